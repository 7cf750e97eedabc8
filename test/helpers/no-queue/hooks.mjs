// Module resolution hooks (see register.mjs): resolving 'bullmq' or 'ioredis' fails as a missing package does.
export async function resolve(specifier, context, next) {
  if (specifier === 'bullmq' || specifier === 'ioredis') {
    const error = new Error(`Cannot find package '${specifier}' (hidden by test/helpers/no-queue)`);
    error.code = 'ERR_MODULE_NOT_FOUND';
    throw error;
  }
  return next(specifier, context);
}
