// happyhorse: HappyHorse 1.1 video generation for Node.js, through the bundled WebAssembly
// component (`videogen:api/video-gen@0.3.0`, transpiled by jco at build time).

export { Client } from './client.js';
export { HappyHorseError } from './errors.js';
export { DEFAULT_BASE_URL } from './config.js';
