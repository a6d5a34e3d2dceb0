import { TsmError } from '../errors/errors.js';

export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new TsmError('ENOT_ROOT', `tsmigrate needs root to ${what}`, { fix: 'run it as root (sudo tsmigrate ...)' });
  }
}
