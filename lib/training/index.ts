// Video-DPO with LoRA on the DiT: the loss, the step, the trainer, and the pieces under them.
export { dpoLoss, negLogSigmoid, trainingSigma, type DpoErrors, type DpoLoss } from './dpo.js';
export { dpoStep, type DpoBatch, type DpoStepOptions, type DpoStepResult } from './dpo-step.js';
export { trainDpo, saveLora, DPO_DEFAULTS, type DpoTrainOptions, type DpoTrainResult, type DpoStepProgress, type PreparedPair } from './trainer.js';
export { readPairs, loadLatents, type PreferencePair, type HostLatents, type VideoEncoding } from './pairs.js';
export { TrainableLora, type LoraInitOptions } from './lora-params.js';
export { AdamW, type AdamWOptions, type AdamWStep } from './adamw.js';
export { forwardWithCheckpoints, ditLoraGradients, disposeGradients, type LoraGradients, type Checkpointed } from './dit-backward.js';
export { Tape } from './tape.js';
export { estimateDpoMemory, type DpoMemoryInput, type DpoMemoryEstimate } from './memory.js';
