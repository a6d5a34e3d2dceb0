/**
 * The CLI with the source's test seams set: a test's own composition root.
 * `node dist/test/helpers/fault-cli.js --fault corrupt-images <tsmigrate args>`
 */
import { main, type CliSeams } from '../../src/cli/main.js';

const FAULTS: Record<string, CliSeams> = {
  /** flip one byte of the memory images on the wire (after the checksum was taken) */
  'corrupt-images': { moveFaults: { corruptImages: true } },
};

const argv = [...process.argv];
const i = argv.indexOf('--fault');
const name = i >= 0 ? argv.splice(i, 2)[1] : undefined;
const seams = name === undefined ? {} : FAULTS[name];
if (!seams) {
  process.stderr.write(`fault-cli: unknown fault ${JSON.stringify(name)}; known: ${Object.keys(FAULTS).join(', ')}\n`);
  process.exit(2);
}
main(argv, seams).then((code) => {
  process.exitCode = code;
});
