/** Public surface of container networking. */
export * from './cidr.js';
export * from './ipam.js';
export * from './bridge.js';
export * from './veth.js';
export * from './guard.js';
export * from './setup.js';
export { netnsPath } from './exec.js';
