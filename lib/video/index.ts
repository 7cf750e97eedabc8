export { type CropWindow, type RgbFrames, standard540pCrop, toRgbFrames } from './frames.js';
export { encodePng } from './png.js';
export { type VideoFormat, type VideoWriter, type VideoWriterOptions, findFfmpeg, openVideoWriter } from './writers.js';
