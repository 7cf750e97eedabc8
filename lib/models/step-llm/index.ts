export { StepLlm, type ForwardOptions, type StepLlmLoadOptions } from './model.js';
export { type StepLlmConfig, checkStepLlmWeights, parseStepLlmConfig, stepLlmWeightSpec } from './config.js';
