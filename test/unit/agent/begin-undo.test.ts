/**
 * Finding 7's other half on the receiving side: a begin cut short after it
 * wrote the container "creating" (here: a staging base the peer refuses)
 * leaves nothing behind, so no container stays "creating" without a record
 * that an abort could reach, and the next begin of that name works. A real
 * state root and image, nothing restored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalAgent } from '../../../src/agent/server.js';
import { resolveImage } from '../../../src/image/store.js';
import { createRuntime } from '../../../src/runtime/context.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { importBusybox } from '../../helpers/images.js';
import { beginReq, config } from './helpers.js';
import { signedBegin } from '../../helpers/trust.js';

test('a begin that fails after writing the container "creating" removes it; the next begin works', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'tsm-begin-'));
  try {
    await importBusybox(root);
    const open = path.join(root, 'open-staging');
    mkdirSync(open);
    chmodSync(open, 0o1777);
    const bad = createRuntime({ root, env: { ...process.env, TSMIGRATE_STAGING: open } });
    const image = await resolveImage(bad.paths, 'busybox');
    const req = { ...beginReq, network: null, leaseOwner: null, config: { ...config, image: { name: 'busybox', digest: image.digest } } };
    const refusing = new LocalAgent(bad, 'local');
    await assert.rejects(refusing.begin(await signedBegin(bad, refusing, req)), (e) => isTsmError(e) && /staging/.test(e.message));
    assert.equal(await bad.store.exists('web-1'), false, 'no container left "creating"');
    assert.deepEqual(readdirSync(open), []);
    const good = createRuntime({ root, env: { ...process.env, TSMIGRATE_STAGING: path.join(root, 'staging') } });
    const agent = new LocalAgent(good, 'local');
    await agent.begin(await signedBegin(good, agent, { ...req, migrationId: `${req.migrationId}-2` }));
    assert.equal(await good.store.exists('web-1'), true);
    await agent.abort({ migrationId: `${req.migrationId}-2` });
    assert.equal(await good.store.exists('web-1'), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
