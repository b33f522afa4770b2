// Public surface of src/system: one operation per file. Each area appends its exports below.
export { buildImage, convertImage, type BuildImageOptions, type ConvertImageOptions, type BuildImageResult, type BuiltLayer, type ImageConfigOverrides, type ImageSource } from './build-image.js';
