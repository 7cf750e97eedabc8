export { type CropWindow, type RgbFrames, standard540pCrop, toRgbFrames } from './frames.js';
export { encodePng } from './png.js';
export { type DecodedPng, decodePng } from './png-decode.js';
export { type DecodedVideo, type ReadVideoOptions, readVideo, toUnitFrames } from './readers.js';
export { type VideoFormat, type VideoWriter, type VideoWriterOptions, type FfmpegInfo, type FfmpegLookup, type FfmpegSource, findFfmpeg, locateFfmpeg, lookupFfmpeg, openVideoWriter, requireFfmpeg, resetFfmpegLookup } from './writers.js';
