// `stepvideo info`: what this build and host can do.
import { CUBLASLT_INSTALL_ADVICE, type CublasLtInfo, NCCL_INSTALL_ADVICE, type NcclInfo, backendInfo, cublasLtInfo, cudaDeviceCount, deviceFault, getDevice, ncclInfo } from '../../device.js';
import { environmentKernelPolicy } from '../../kernel-policy.js';
import type { AddonSource } from '../../native.js';
import { lookupFfmpeg } from '../../video/writers.js';
import type { CommandContext } from './types.js';

/** NCCL: needed only for ranks on several GPUs (--sequence-parallel / --cfg-parallel over devices). */
function ncclLine(nccl: NcclInfo): string {
  if (nccl.path !== null) return `NCCL (several GPUs per job): ${nccl.path} (${nccl.version})`;
  return `NCCL (several GPUs per job): not found; one GPU per job works without it (${NCCL_INSTALL_ADVICE})\n  ${nccl.why}`;
}

function cublasLtLine(cublasLt: CublasLtInfo): string {
  const unused = environmentKernelPolicy().gemm === 'fallback' ? ' (unused: STEPVIDEO_GEMM=fallback)' : '';
  if (cublasLt.path !== null) return `cuBLASLt: ${cublasLt.path}${unused}`;
  return `cuBLASLt: not found: own GEMM kernel (${CUBLASLT_INSTALL_ADVICE})${unused}\n  ${cublasLt.why}`;
}

function addonLine(addon: AddonSource): string {
  if (addon.origin === 'prebuilt') return `prebuilt (${addon.packageName}), ${addon.path}`;
  if (addon.origin === 'explicit') return `${addon.path} (STEPVIDEO_ADDON)`;
  return `built from source, ${addon.path}`;
}

export async function infoCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  const info = backendInfo();
  const lines = [
    `stepvideo ${process.versions.node ? `on Node ${process.versions.node}` : ''}`,
    `addon: ${addonLine(info.addon)}`,
    `CPU backend: ${info.cpuThreads} threads`,
    `CUDA backend compiled: ${info.cudaCompiled ? `yes (${info.cudaArchitectures}, runtime ${info.cudaVersions.runtime})` : 'no'}`,
  ];
  if (info.cudaEmulated) {
    lines.push('CUDA device: EMULATED. This build runs the CUDA kernels on the CPU (STEPVIDEO_CUDA=emulate), for tests: no GPU is used, and it is thousands of times slower than one');
  } else if (info.cudaCompiled) {
    const { driver, driverRelease, driverMinimum } = info.cudaVersions;
    const release = driverRelease ? `driver ${driverRelease}, ` : '';
    lines.push(`NVIDIA driver: ${driver ? `${release}CUDA ${driver}` : 'not found'} (the runtime needs driver ${driverMinimum} or later)`);
  }
  const cublasLt = info.cudaCompiled ? cublasLtInfo() : undefined;
  if (cublasLt !== undefined) lines.push(cublasLtLine(cublasLt));
  const nccl = info.cudaCompiled ? ncclInfo() : undefined;
  if (nccl !== undefined) lines.push(ncclLine(nccl));
  const count = cudaDeviceCount();
  if (count === 0) {
    lines.push(`CUDA devices: none (${info.cudaUnavailableReason})`);
  } else {
    for (let i = 0; i < count; i++) {
      const fault = deviceFault(getDevice(`cuda:${i}`));
      if (fault) {
        lines.push(`cuda:${i}: unusable after a GPU fault (${fault})`);
        continue;
      }
      const d = getDevice(`cuda:${i}`).info();
      lines.push(`cuda:${i}: ${d.name}, sm_${d.computeCapability.replace('.', '')}, ${d.multiprocessors} SMs, ${(d.totalBytes / 2 ** 30).toFixed(1)} GiB (${(d.freeBytes / 2 ** 30).toFixed(1)} GiB free)`);
    }
  }
  const { ffmpeg, error: ffmpegError } = lookupFfmpeg();
  lines.push(ffmpeg ? `ffmpeg (MP4 output): ${ffmpeg.path} (from ${ffmpeg.source}; ${ffmpeg.version})` : `ffmpeg (MP4 output): none: ${ffmpegError.message}`);
  if (argv.includes('--json')) {
    context.stdout(JSON.stringify({ ...info, devices: count, ...(cublasLt ? { cublasLt } : {}), ...(nccl ? { nccl } : {}), ffmpeg: ffmpeg ?? { error: ffmpegError.message } }, null, 2));
  } else {
    context.stdout(lines.join('\n'));
  }
  return 0;
}
