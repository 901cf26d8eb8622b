#!/usr/bin/env node
// Writes protos/snix/** from protos/tvix/**: the same schema under the
// snix.* package names and import paths, so the daemon serves current snix
// clients with the same handlers. Re-run after editing a tvix proto; a test
// fails when the two trees drift apart.
import { readdirSync, readFileSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const protos = join(dirname(fileURLToPath(import.meta.url)), '..', 'protos');

export function toSnix(text) {
  return text
    .replace(/\bpackage tvix\./g, 'package snix.')
    .replace(/import "tvix\//g, 'import "snix/')
    .replace(/\btvix\.castore\.v1\./g, 'snix.castore.v1.')
    .replace(/code\.tvl\.fyi\/tvix\/castore-go;castorev1/g, 'snix.dev/castore/proto;castorev1')
    .replace(/code\.tvl\.fyi\/tvix\/store-go;storev1/g, 'snix.dev/store/proto;storev1')
    .replace(/\(tvix\.castore\.v1 schema\)/g, '(snix.castore.v1 schema, generated from protos/tvix)')
    .replace(/\(tvix\.store\.v1 schema\)/g, '(snix.store.v1 schema, generated from protos/tvix)');
}

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* walk(p);
    else if (p.endsWith('.proto')) yield p;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const src of walk(join(protos, 'tvix'))) {
    const dst = join(protos, 'snix', relative(join(protos, 'tvix'), src));
    mkdirSync(dirname(dst), { recursive: true });
    writeFileSync(dst, toSnix(readFileSync(src, 'utf8')));
    console.log(relative(protos, dst));
  }
}
