// flake.nix, nix/package.nix and nix/module.nix as far as real Nix 2.8 can
// take them without nixpkgs: every file parses; the flake's outputs
// evaluate against a stand-in nixpkgs (test/fixtures/nix-integration/
// stub-*.nix: stand-in packages, nixpkgs' real lib from the vendored
// snapshot) — first by calling `outputs` directly, then through the real
// flake commands (`nix build .#uploadClosure`, `nix run .#daemon`, `nix
// flake check --no-build`) with `--override-input nixpkgs path:<stub>`;
// the npm lock handed to importNpmLock is checked; the NixOS module is
// evaluated with the real lib.evalModules (the NixOS options it sets
// declared with real types) and its post-build-hook wrapper is built and
// run in both modes against the real `nix-castore hook`.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fixtureClosureNixFile, nixBuild, nixEnv, requireNix, runNix } from '../helpers/nix.js';
import { CLI, CLI_NODE_FLAGS, startDaemonProcess } from '../helpers/daemon.js';
import { checkHealth } from '../../src/grpc/health-client.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { assertStoreMatchesNix, publishedPaths } from '../copy/verify-store.js';
import { nixpkgsLibDir } from '../helpers/nixpkgs-lib.js';

const FIXTURES = dirname(fixtureClosureNixFile());
const NIX_FIXTURES = join(FIXTURES, 'nix-integration');
const REPO = dirname(dirname(FIXTURES));
const SALT = `${process.pid}-${Date.now()}`;
const CONFIG = ['build-users-group ='];
const SYSTEM = process.arch === 'arm64' ? 'aarch64-linux' : 'x86_64-linux';
/** nixpkgs' real lib: a clear failure here when shared/ is missing, never a skip. */
const NIXPKGS_LIB = nixpkgsLibDir();

let tmp: string;
const built: string[] = [];

before(async () => {
  await requireNix(); // a clear message when Nix is missing, never a skip
  tmp = await mkdtemp(join(tmpdir(), 'nix-flake-'));
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
  if (built.length > 0) await runNix('nix-store', ['--delete', ...built]).catch(() => undefined);
});

const nixString = (s: string) => JSON.stringify(s); // a JSON string is a valid Nix string here (no ${)

async function evalJson(expr: string): Promise<unknown> {
  const { stdout } = await runNix('nix', ['eval', '--impure', '--json', '--expr', expr], { env: nixEnv(CONFIG) });
  return JSON.parse(stdout.toString());
}

async function buildExpr(expr: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      const [out] = await nixBuild(expr, { kind: 'expr', config: CONFIG });
      built.push(out);
      return out;
    } catch (e) {
      if (attempt >= 3 || !/failed due to signal/.test((e as Error).message)) throw e; // NixOS/nix#2176
    }
  }
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The README's fenced code block (```lang) that contains `needle`. */
function readmeBlock(lang: string, needle: string): string {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].filter((b) => b[1] === lang && b[2].includes(needle));
  assert.equal(blocks.length, 1, `one \`\`\`${lang} block in README.md containing ${JSON.stringify(needle)}`);
  return blocks[0][2];
}

/** The flake's outputs, `outputs` called with the stub nixpkgs. */
const OUTPUTS = `(import ${nixString(join(NIX_FIXTURES, 'flake-outputs.nix'))} { repo = ${nixString(REPO)}; salt = ${nixString(SALT)}; nixpkgsLib = ${nixString(NIXPKGS_LIB)}; })`;

describe('every Nix file parses', () => {
  it('flake.nix and nix/*.nix (nix-instantiate --parse)', async () => {
    const files = ['flake.nix', ...(await readdir(join(REPO, 'nix'))).filter((f) => f.endsWith('.nix')).map((f) => `nix/${f}`)];
    for (const f of ['nix/package.nix', 'nix/upload-closure.nix', 'nix/module.nix', 'nix/npm-lock.nix']) assert.ok(files.includes(f), f);
    for (const f of files) await runNix('nix-instantiate', ['--parse', join(REPO, f)]);
  });
});

describe('flake outputs with a stand-in nixpkgs', () => {
  it('has the packages, apps, lib, overlay, module and checks, for x86_64-linux and aarch64-linux', async () => {
    const summary = (await evalJson(`let o = ${OUTPUTS}; s = o.self; p = o.stubPkgs; in {
      packages = builtins.mapAttrs (_: builtins.attrNames) s.packages;
      apps = builtins.mapAttrs (_: builtins.mapAttrs (_: a: { inherit (a) type; program = builtins.unsafeDiscardStringContext a.program; })) s.apps;
      checks = builtins.mapAttrs (_: builtins.attrNames) s.checks;
      main = s.packages.x86_64-linux.default.meta.mainProgram;
      sameDefault = s.packages.x86_64-linux.default == s.packages.x86_64-linux.nix-castore;
      mkUploadClosure = builtins.typeOf s.lib.mkUploadClosure;
      helperResult = (s.lib.mkUploadClosure p { paths = [ p.hello ]; }).name;
      overlay = (s.overlays.default p p).nix-castore.name;
      module = builtins.attrNames s.nixosModules.default;
      moduleImports = map toString s.nixosModules.default.imports;
      uploadClosure = s.packages.x86_64-linux.uploadClosure.name;
    }`)) as Record<string, any>;
    for (const system of ['x86_64-linux', 'aarch64-linux']) {
      assert.deepEqual(summary.packages[system], ['default', 'nix-castore', 'uploadClosure'], system);
      assert.deepEqual(Object.keys(summary.apps[system]).sort(), ['daemon', 'default']);
      assert.equal(summary.apps[system].daemon.type, 'app');
      assert.match(summary.apps[system].daemon.program, /^\/nix\/store\/[a-z0-9]{32}-nix-castore-daemon$/);
      assert.match(summary.apps[system].default.program, /^\/nix\/store\/[a-z0-9]{32}-nix-castore-0\.1\.0\/bin\/nix-castore$/);
      assert.deepEqual(summary.checks[system], ['nixos-module', 'package', 'uploadClosure', 'uploadClosureLegacy', 'uploadClosureViaDaemon']);
    }
    assert.equal(summary.main, 'nix-castore');
    assert.equal(summary.sameDefault, true);
    assert.equal(summary.mkUploadClosure, 'lambda');
    assert.equal(summary.helperResult, 'upload-closure');
    assert.equal(summary.overlay, 'nix-castore-0.1.0');
    assert.deepEqual(summary.module, ['imports']);
    assert.deepEqual(summary.moduleImports, [join(REPO, 'nix', 'module.nix')]);
    assert.equal(summary.uploadClosure, 'hello-closure');
  });

  it('package.nix: importNpmLock gets registry URLs for what the build needs on each platform, nothing else', async () => {
    const locks = (await evalJson(`let s = ${OUTPUTS}.self; in {
      x86_64 = s.packages.x86_64-linux.default.passthru.npmLock;
      aarch64 = s.packages.aarch64-linux.default.passthru.npmLock;
      aarch64PostInstall = s.packages.aarch64-linux.default.drvAttrs.postInstall;
      x86_64PostInstall = s.packages.x86_64-linux.default.drvAttrs.postInstall;
    }`)) as Record<string, any>;
    const pkgJson = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8'));
    const lock = JSON.parse(await readFile(join(REPO, 'package-lock.json'), 'utf8'));
    const url = /^https:\/\/registry\.npmjs\.org\/(@[^/]+\/)?[^/]+\/-\/[^/]+-\d[^/]*\.tgz$/;

    for (const [arch, npmCpu, other] of [['x86_64', 'x64', 'arm64'], ['aarch64', 'arm64', 'x64']] as const) {
      const { packageJson, packageLock } = locks[arch];
      assert.deepEqual(packageJson.dependencies, pkgJson.dependencies, 'runtime dependencies unchanged');
      assert.deepEqual(Object.keys(packageJson.devDependencies ?? {}).sort(), ['@types/node', 'typescript'], 'only the build\'s devDependencies');
      const pkgs = packageLock.packages as Record<string, any>;
      assert.ok(!Object.keys(pkgs).some((k) => k.includes('@bufbuild/')), 'buf is not fetched');
      for (const dep of Object.keys(pkgJson.dependencies)) {
        assert.match(pkgs[`node_modules/${dep}`]?.resolved ?? '', url, `${arch}: ${dep} has a registry URL`);
      }
      for (const [key, entry] of Object.entries(pkgs)) {
        if (key === '') continue;
        assert.deepEqual({ ...entry, resolved: undefined }, { ...lock.packages[key], resolved: undefined }, `${key}: only "resolved" added`);
        if (entry.resolved === undefined) {
          assert.ok(entry.optional && (entry.cpu ?? []).concat(entry.os ?? [], entry.libc ?? []).length > 0, `${arch}: ${key} left out only as another platform's optional package`);
          continue;
        }
        assert.match(entry.resolved, url, key);
        assert.ok(entry.integrity, `${key} has an integrity`);
        const name = entry.name ?? key.split('node_modules/').pop();
        const base = name.split('/').pop();
        assert.equal(entry.resolved, `https://registry.npmjs.org/${name}/-/${base}-${entry.version}.tgz`, key);
        assert.ok(!(entry.cpu ?? []).includes(other) || (entry.cpu ?? []).includes(npmCpu), `${arch}: ${key} is not for ${other}`);
        assert.ok(!(entry.libc ?? []).includes('musl'), `${arch}: ${key} is not for musl`);
      }
      assert.match(pkgs[`node_modules/@typescript/typescript-linux-${npmCpu}`].resolved, url, `${arch}: the compiler's native binary`);
    }
    // The BLAKE3 addon: x86_64 from the lock; aarch64-linux-gnu was never
    // published at the locked version, so package.nix adds 1.3.4's.
    const lx = locks.x86_64.packageLock.packages;
    assert.match(lx['node_modules/@napi-rs/blake-hash-linux-x64-gnu'].resolved, url);
    assert.equal(lx['node_modules/@napi-rs/blake-hash-linux-x64-musl'].resolved, undefined);
    assert.doesNotMatch(locks.x86_64PostInstall, /blake/);
    assert.match(locks.aarch64PostInstall, /blake-hash-linux-arm64-gnu-1\.3\.4\.tgz/);
    assert.match(locks.aarch64PostInstall, /blake\.linux-arm64-gnu\.node/);
  });

  it('builds (stand-in buildNpmPackage) running package.nix\'s postInstall and install check; bin/nix-castore-hook is `nix-castore hook`', async () => {
    const out = await buildExpr(`${OUTPUTS}.self.packages.${SYSTEM}.default`);
    // bin/nix-castore (makeWrapper, replacing npm's wrapper) runs node with the CLI's heap flags.
    assert.deepEqual((await readdir(join(out, 'bin'))).sort(), ['nix-castore', 'nix-castore-hook']);
    assert.match(await readFile(join(out, 'bin', 'nix-castore'), 'utf8'), new RegExp(`/bin/node ${CLI_NODE_FLAGS.join(' ')} \\S+/dist/src/cli/main\\.js "\\$@"`));
    const hookHelp = await run(join(out, 'bin', 'nix-castore-hook'), ['--help'], process.env);
    assert.equal(hookHelp.code, 0, hookHelp.stderr);
    assert.match(hookHelp.stdout, /^Usage: nix-castore hook /);
    // Anything but a queue-mode run goes to the full `nix-castore hook` (its sh fast path is tested in test/hook/).
    assert.match(await readFile(join(REPO, 'bin', 'nix-castore-hook'), 'utf8'), /exec "\$here\/nix-castore" hook "\$@"/);
    const lock = JSON.parse(await readFile(join(out, 'share', 'npm-deps-package-lock.json'), 'utf8'));
    assert.ok(lock.packages['node_modules/@napi-rs/blake-hash'].resolved, 'importNpmLock was given the patched lock');
  });
});

describe('the flake through the real flake commands (nixpkgs overridden with a stand-in)', () => {
  let project: string;
  let stub: string;
  let flakeArgs: string[];
  const env = () => nixEnv([...CONFIG, 'experimental-features = nix-command flakes']);

  before(async () => {
    // A copy of the flake's own files (a path: flake of the checkout would
    // copy node_modules into the store) and a stub nixpkgs flake.
    project = join(tmp, 'project');
    stub = join(tmp, 'nixpkgs');
    await mkdir(project);
    await mkdir(stub);
    for (const f of ['flake.nix', 'nix', 'bin', 'package.json', 'package-lock.json', 'tsconfig.json']) {
      await cp(join(REPO, f), join(project, f), { recursive: true });
    }
    for (const f of ['stub-nixpkgs.nix', 'stub-pkgs.nix', 'stand-ins.nix']) await cp(join(NIX_FIXTURES, f), join(stub, f));
    await cp(NIXPKGS_LIB, join(stub, 'nixpkgs-lib'), { recursive: true });
    await cp(join(NIX_FIXTURES, 'stub-nixpkgs-flake.nix'), join(stub, 'flake.nix'));
    await cp(fixtureClosureNixFile(), join(stub, 'closure.nix'));
    await writeFile(join(stub, 'params.json'), JSON.stringify({ repo: REPO, salt: SALT }));
    flakeArgs = ['--no-write-lock-file', '--override-input', 'nixpkgs', `path:${stub}`];
  });

  it('nix flake check --no-build', async () => {
    await runNix('nix', ['flake', 'check', '--no-build', ...flakeArgs, `path:${project}`], { env: env() });
  });

  it('nix build .#uploadClosure: ./result is a store `nix-castore daemon --data ./result` serves', async () => {
    const { stdout } = await runNix('nix', ['build', '--json', '--no-link', ...flakeArgs, `path:${project}#uploadClosure`], { env: env() });
    const out = (JSON.parse(stdout.toString()) as Array<{ outputs: { out: string } }>)[0].outputs.out;
    built.push(out);
    // The stand-in nixpkgs' `hello` is the fixture closure's root.
    const [hello] = await nixBuild(fixtureClosureNixFile(), { attr: 'tree', kind: 'file' });
    const closure = (await runNix('nix-store', ['-qR', hello])).stdout.toString().split('\n').filter(Boolean).sort();
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    assert.deepEqual(manifest.paths.map((p: { path: string }) => p.path), closure);
    const d = await startDaemonProcess({ dataDir: out });
    const store = openStore(sameAddr(d.addr));
    try {
      assert.deepEqual(await publishedPaths(store), closure);
      await assertStoreMatchesNix(store, closure);
    } finally {
      await store.close();
      await d.stop();
    }
  });

  it('README: the flake-input snippet evaluates and its `castore` package builds', async () => {
    const snippet = readmeBlock('nix', 'nix-castore.lib.mkUploadClosure');
    const user = join(tmp, 'user-flake');
    await mkdir(user);
    await writeFile(join(user, 'flake.nix'), snippet);
    const args = ['--no-write-lock-file', '--override-input', 'nixpkgs', `path:${stub}`, '--override-input', 'nix-castore', `path:${project}`];
    const push = JSON.parse((await runNix('nix', ['eval', '--json', ...args, `path:${user}#packages.x86_64-linux.push`, '--apply',
      'p: { inherit (p) name; noChroot = p.drvAttrs.__noChroot; script = builtins.elemAt p.drvAttrs.args 1; }'], { env: env() })).stdout.toString());
    assert.equal(push.name, 'push-hello');
    assert.equal(push.noChroot, true);
    assert.match(push.script, /copy --store 'grpc\+http:\/\/castore\.internal:8000' --manifest "\$out\/manifest\.json" --sign-key-file '\/etc\/nix\/castore-signing\.key'/);
    if (SYSTEM === 'x86_64-linux') {
      const { stdout } = await runNix('nix', ['build', '--json', '--no-link', ...args, `path:${user}#castore`], { env: env() });
      const out = (JSON.parse(stdout.toString()) as Array<{ outputs: { out: string } }>)[0].outputs.out;
      built.push(out);
      assert.deepEqual((await readdir(out)).sort(), ['blobs', 'directories', 'directory-packs', 'gc', 'manifest.json', 'packs', 'pathinfo', 'tmp']);
    } else {
      await runNix('nix', ['eval', '--raw', ...args, `path:${user}#packages.x86_64-linux.castore.drvPath`], { env: env() });
    }
  });

  it('README: `post-build-hook = …/bin/nix-castore-hook` in nix.conf queues each build', async () => {
    const { stdout } = await runNix('nix', ['build', '--json', '--no-link', ...flakeArgs, `path:${project}#nix-castore`], { env: env() });
    const pkg = (JSON.parse(stdout.toString()) as Array<{ outputs: { out: string } }>)[0].outputs.out;
    const line = readmeBlock('', 'post-build-hook = ').trim();
    assert.match(line, /^post-build-hook = \/nix\/store\/…-nix-castore-0\.1\.0\/bin\/nix-castore-hook$/);
    const spool = join(tmp, 'nix-conf-spool');
    const drvExpr = `derivation { name = "nix-castore-hook-line"; system = builtins.currentSystem; builder = "/bin/sh"; salt = ${nixString(SALT)}; args = [ "-c" "echo hooked > $out; /usr/bin/sleep 0.05 &" ]; }`;
    const [out] = await nixBuild(drvExpr, {
      kind: 'expr',
      env: nixEnv([...CONFIG, line.replace('/nix/store/…-nix-castore-0.1.0', pkg)], { NIX_CASTORE_HOOK_MODE: 'queue', NIX_CASTORE_SPOOL: spool }),
    });
    built.push(out);
    const drv = (await runNix('nix-store', ['--query', '--deriver', out])).stdout.toString().trim();
    const entries = (await readdir(spool)).filter((n) => n.endsWith('.json'));
    assert.equal(entries.length, 1);
    assert.equal(JSON.parse(await readFile(join(spool, entries[0]), 'utf8')).drvPath, drv);
  });

  it('nix run .#daemon -- --listen … --data …: the daemon, on the given store', async () => {
    const sock = join(tmp, 'run-daemon.sock');
    const data = join(tmp, 'run-daemon-data');
    const child = spawn('nix', ['run', ...flakeArgs, `path:${project}#daemon`, '--', '--listen', `unix:${sock}`, '--data', data], {
      env: env(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr!.on('data', (d) => (log += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const deadline = Date.now() + 60_000;
      while ((await checkHealth(`unix://${sock}`, false, 1000)) !== 'SERVING') {
        assert.ok(child.exitCode === null, `nix run exited early:\n${log}`);
        assert.ok(Date.now() < deadline, `no healthy daemon after 60 s:\n${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(log, new RegExp(`serving file://${data}`));
    } finally {
      child.kill('SIGTERM'); // nix run execs the app: the signal reaches the daemon
      assert.equal(await exited, 0, log);
    }
  });
});

describe('nix/module.nix (the real lib.evalModules)', () => {
  const evalModule = (settings: string) =>
    evalJson(`(import ${nixString(join(NIX_FIXTURES, 'eval-module.nix'))} { repo = ${nixString(REPO)}; salt = ${nixString(SALT)}; nixpkgsLib = ${nixString(NIXPKGS_LIB)}; settings = ${settings}; })`) as Promise<{
      options: Array<{ name: string; type: string }>;
      config: Record<string, any>;
    }>;

  it('options: the documented names, types and defaults', async () => {
    const { options } = await evalModule('{ }');
    assert.deepEqual(
      Object.fromEntries(options.map((o) => [o.name.replace('services.nix-castore.', ''), o.type])),
      {
        enable: 'boolean',
        package: 'package',
        listen: 'list of string',
        dataDir: 'string',
        user: 'string',
        group: 'string',
        store: 'null or string',
        environmentFile: 'null or string',
        authTokenFile: 'null or string',
        extraArgs: 'list of string',
        'gc.enable': 'boolean',
        'gc.interval': 'string',
        'gc.keepSince': 'null or string',
        'gc.maxSize': 'null or string',
        'gc.grace': 'null or string',
        'gc.memory': 'null or string',
        'limits.maxMessageSize': 'null or (positive integer, meaning >0)',
        'limits.maxConnections': 'null or (positive integer, meaning >0)',
        'limits.handshakeTimeout': 'null or (positive integer, meaning >0)',
        'limits.idleTimeout': 'null or (positive integer, meaning >0)',
        'limits.maxBufferedBytes': 'null or string',
        'limits.maxConcurrentStreams': 'null or (positive integer, meaning >0)',
        'limits.streamStallTimeout': 'null or (positive integer, meaning >0)',
        'limits.httpWriteBuffer': 'null or string',
        'postBuildHook.enable': 'boolean',
        'postBuildHook.mode': 'one of "queue", "direct"',
        'postBuildHook.store': 'string',
        'postBuildHook.spoolDir': 'string',
        'postBuildHook.extraArgs': 'list of string',
      },
    );
    // Not enabled: nothing is configured.
    assert.deepEqual((await evalModule('{ }')).config, {});
  });

  it('enable: a systemd service running the daemon on [::1]:8000 and /var/lib/nix-castore as user nix-castore', async () => {
    const { config } = await evalModule('{ services.nix-castore.enable = true; }');
    const svc = config.systemd.services['nix-castore'];
    assert.match(svc.serviceConfig.ExecStart, /^\/nix\/store\/[a-z0-9]{32}-nix-castore-stand-in\/bin\/nix-castore daemon '--listen' '\[::1\]:8000' '--data' '\/var\/lib\/nix-castore'$/);
    assert.equal(svc.serviceConfig.User, 'nix-castore');
    assert.equal(svc.serviceConfig.Group, 'nix-castore');
    assert.deepEqual(svc.wantedBy, ['multi-user.target']);
    assert.deepEqual(svc.serviceConfig.ReadWritePaths, ['/var/lib/nix-castore']);
    // Restarted for as long as it fails (systemd's default gives up after 5 starts in 10 s).
    assert.equal(svc.startLimitIntervalSec, 0);
    assert.deepEqual([svc.after, svc.wants], [['network.target'], []]);
    // A remote store: started once the network is online.
    const remote = (await evalModule('{ services.nix-castore = { enable = true; store = "s3://b?index=postgres://x"; }; }')).config.systemd.services['nix-castore'];
    assert.deepEqual([remote.after, remote.wants], [['network.target', 'network-online.target'], ['network-online.target']]);
    assert.deepEqual(config.users.users['nix-castore'].isSystemUser, true);
    assert.deepEqual(config.users.groups, { 'nix-castore': {} });
    assert.deepEqual(config.systemd.tmpfiles.rules, ["d '/var/lib/nix-castore' 0750 nix-castore nix-castore - -"]);
    assert.equal(config.nix, undefined, 'no post-build hook unless asked');
  });

  it('limits and the gc memory and grace become daemon flags that a real daemon accepts', async () => {
    const { config } = await evalModule(
      '{ services.nix-castore = { enable = true; gc = { enable = true; grace = "2h"; memory = "128MiB"; }; limits = { maxBufferedBytes = "512M"; maxConcurrentStreams = 200; streamStallTimeout = 30; httpWriteBuffer = "128K"; maxConnections = 64; idleTimeout = 120; handshakeTimeout = 5; maxMessageSize = 8388608; }; }; }',
    );
    const exec: string = config.systemd.services['nix-castore'].serviceConfig.ExecStart;
    const words = [...exec.matchAll(/'((?:[^']|'\\'')*)'/g)].map((m) => m[1]);
    const flags = words.slice(words.indexOf('/var/lib/nix-castore') + 1);
    assert.deepEqual(flags, [
      '--gc-interval', '1d', '--gc-keep-since', '30d', '--gc-grace', '2h', '--gc-memory', '128MiB',
      '--handshake-timeout', '5', '--http-write-buffer', '128K', '--idle-timeout', '120', '--max-buffered-bytes', '512M',
      '--max-concurrent-streams', '200', '--max-connections', '64', '--max-message-size', '8388608', '--stream-stall-timeout', '30',
    ]);
    // Null limits add nothing.
    const plain = await evalModule('{ services.nix-castore.enable = true; }');
    assert.doesNotMatch(plain.config.systemd.services['nix-castore'].serviceConfig.ExecStart, /--max-|timeout|--http-write/);
    // The daemon takes every one of them (a wrong name or value would stop it with exit 2).
    const daemon = await startDaemonProcess({ extraArgs: flags });
    try {
      assert.equal(await checkHealth(`unix://${daemon.socket}`, false, 5000), 'SERVING');
    } finally {
      await daemon.stop();
    }
  });

  it('gc: the daemon collects on a schedule with the policy', async () => {
    const { config } = await evalModule('{ services.nix-castore = { enable = true; gc = { enable = true; interval = "6h"; maxSize = "500G"; }; }; }');
    const svc = config.systemd.services['nix-castore'];
    assert.match(svc.serviceConfig.ExecStart, / daemon '--listen' '\[::1\]:8000' '--data' '\/var\/lib\/nix-castore' '--gc-interval' '6h' '--gc-keep-since' '30d' '--gc-max-size' '500G'$/);
    assert.deepEqual(config.assertions.map((a: { assertion: boolean }) => a.assertion), [true]);
    // A scale-out store collects too (PostgreSQL's advisory lock, gc_state fence).
    const s3 = await evalModule('{ services.nix-castore = { enable = true; store = "s3://b?index=postgres://x"; gc = { enable = true; keepSince = "14d"; }; }; }');
    assert.deepEqual(s3.config.assertions.map((a: { assertion: boolean }) => a.assertion), [true]);
    assert.match(s3.config.systemd.services['nix-castore'].serviceConfig.ExecStart, / daemon '--listen' '\[::1\]:8000' '--store' 's3:\/\/b\?index=postgres:\/\/x' '--gc-interval' '1d' '--gc-keep-since' '14d'$/);
    const disk = await evalModule('{ services.nix-castore = { enable = true; store = "file:///srv/castore"; gc.enable = true; }; }');
    assert.deepEqual(disk.config.assertions.map((a: { assertion: boolean }) => a.assertion), [true]);
    // A daemon serving another daemon's store has no collector of its own; no policy at all keeps nothing.
    const remote = await evalModule('{ services.nix-castore = { enable = true; store = "grpc+http://10.0.0.1:8000"; gc.enable = true; }; }');
    assert.deepEqual(remote.config.assertions.map((a: { assertion: boolean }) => a.assertion), [false]);
    const noPolicy = await evalModule('{ services.nix-castore = { enable = true; store = "s3://b?index=postgres://x"; gc = { enable = true; keepSince = null; }; }; }');
    assert.deepEqual(noPolicy.config.assertions.map((a: { assertion: boolean }) => a.assertion), [false]);
  });

  it('postBuildHook (queue): nix.settings.post-build-hook is a wrapper; the daemon drains the spool', async () => {
    const { config } = await evalModule('{ services.nix-castore = { enable = true; postBuildHook.enable = true; extraArgs = [ "--http" "127.0.0.1:8080" ]; }; }');
    const svc = config.systemd.services['nix-castore'];
    assert.match(svc.serviceConfig.ExecStart, / daemon '--listen' '\[::1\]:8000' '--data' '\/var\/lib\/nix-castore' '--drain-spool' '\/var\/spool\/nix-castore' '--http' '127.0.0.1:8080'$/);
    assert.deepEqual(svc.serviceConfig.ReadWritePaths, ['/var/lib/nix-castore', '/var/spool/nix-castore']);
    assert.ok(config.systemd.tmpfiles.rules.includes("d '/var/spool/nix-castore' 0750 nix-castore nix-castore - -"));
    assert.match(config.nix.settings['post-build-hook'], /^\/nix\/store\/[a-z0-9]{32}-nix-castore-post-build-hook$/);
    assert.deepEqual(config.assertions.map((a: { assertion: boolean }) => a.assertion), [true]);
  });

  it('postBuildHook (direct) with a unix socket and an own user: no spool, no users created, store from the listen address', async () => {
    const { config } = await evalModule(`{ services.nix-castore = {
      enable = true; user = "castore"; group = "castore"; listen = [ "unix:/run/nix-castore/daemon.sock" ];
      postBuildHook = { enable = true; mode = "direct"; };
    }; }`);
    assert.doesNotMatch(config.systemd.services['nix-castore'].serviceConfig.ExecStart, /drain-spool/);
    assert.deepEqual(config.users ?? {}, {}, 'no user or group created');
    const wrapper = await buildExpr(`(import ${nixString(join(NIX_FIXTURES, 'eval-module.nix'))} { repo = ${nixString(REPO)}; salt = ${nixString(SALT)}; nixpkgsLib = ${nixString(NIXPKGS_LIB)}; settings = { services.nix-castore = {
      enable = true; listen = [ "unix:/run/nix-castore/daemon.sock" ]; postBuildHook = { enable = true; mode = "direct"; }; }; }; }).config.nix.settings.post-build-hook`);
    const text = await readFile(wrapper, 'utf8');
    assert.match(text, /^export NIX_CASTORE_HOOK_MODE='direct'$/m);
    assert.match(text, /^export NIX_CASTORE_STORE='grpc\+unix:\/\/\/run\/nix-castore\/daemon\.sock'$/m);
    assert.match(text, /^export NIX_CASTORE_SPOOL='\/var\/spool\/nix-castore'$/m);
    assert.match(text, /^exec \/nix\/store\/[a-z0-9]{32}-nix-castore-stand-in\/bin\/nix-castore-hook +"\$@"$/m);
  });

  it('README: the NixOS example', async () => {
    const block = readmeBlock('nix', 'services.nix-castore = {');
    const m = /services\.nix-castore = (\{[\s\S]*?\n  \});/.exec(block);
    assert.ok(m, `no services.nix-castore block in:\n${block}`);
    const { config } = await evalModule(`{ services.nix-castore = ${m[1]}; }`);
    assert.match(
      config.systemd.services['nix-castore'].serviceConfig.ExecStart,
      / daemon '--listen' '\[::1\]:8000' '--listen' 'unix:\/run\/nix-castore\/daemon\.sock' '--data' '\/var\/lib\/nix-castore' '--drain-spool' '\/var\/spool\/nix-castore' '--gc-interval' '1d' '--gc-keep-since' '30d' '--max-buffered-bytes' '512M' '--http' '127\.0\.0\.1:8080'$/,
    );
    assert.ok(config.nix.settings['post-build-hook']);
  });

  it('store + environmentFile: the daemon serves that store (e.g. S3 + PostgreSQL) with secrets from the file', async () => {
    const addr = 's3://castore/prod?region=eu-west-1&index=postgres://castore@db/castore';
    const { config } = await evalModule(`{ services.nix-castore = { enable = true; store = ${nixString(addr)}; environmentFile = "/run/secrets/castore.env"; }; }`);
    const svc = config.systemd.services['nix-castore'].serviceConfig;
    assert.match(svc.ExecStart, / daemon '--listen' '\[::1\]:8000' '--store' 's3:\/\/castore\/prod\?region=eu-west-1&index=postgres:\/\/castore@db\/castore'$/);
    assert.equal(svc.EnvironmentFile, '/run/secrets/castore.env');
    const plain = (await evalModule('{ services.nix-castore.enable = true; }')).config.systemd.services['nix-castore'].serviceConfig;
    assert.equal(plain.EnvironmentFile, undefined);
  });

  it('the real module system refuses a value of the wrong type and a misspelt option', async () => {
    await assert.rejects(evalModule('{ services.nix-castore = { enable = true; listen = "[::1]:8000"; }; }'), /services\.nix-castore\.listen' is not of type `list of string'/);
    await assert.rejects(evalModule('{ services.nix-castore.postBuildHook = { enable = true; mode = "later"; }; }'), /is not of type `one of "queue", "direct"'/);
    await assert.rejects(evalModule('{ services.nix-castore.enabel = true; }'), /The option `services\.nix-castore\.enabel' does not exist/);
  });

  it('queue mode without the daemon is refused by an assertion', async () => {
    const { config } = await evalModule('{ services.nix-castore.postBuildHook.enable = true; }');
    assert.deepEqual(config.assertions.map((a: { assertion: boolean }) => a.assertion), [false]);
  });

  describe('the hook wrapper, run as Nix runs it (DRV_PATH, OUT_PATHS; nothing else set)', () => {
    let fixtureFile: string;
    let fixtureDrv: string;
    before(async () => {
      [fixtureFile] = await nixBuild(fixtureClosureNixFile(), { attr: 'file', kind: 'file' });
      fixtureDrv = (await runNix('nix-store', ['--query', '--deriver', fixtureFile])).stdout.toString().trim();
    });

    const hookEnv = () => {
      const e = nixEnv();
      for (const k of Object.keys(e)) if (k.startsWith('NIX_CASTORE_')) delete e[k];
      return { ...e, DRV_PATH: fixtureDrv, OUT_PATHS: fixtureFile };
    };

    const wrapperFor = (settings: string) =>
      buildExpr(`(import ${nixString(join(NIX_FIXTURES, 'eval-module.nix'))} { repo = ${nixString(REPO)}; salt = ${nixString(SALT)}; nixpkgsLib = ${nixString(NIXPKGS_LIB)}; settings = ${settings}; }).config.nix.settings.post-build-hook`);

    it('queue: writes a spool entry in services.nix-castore.postBuildHook.spoolDir', async () => {
      const spool = join(tmp, 'spool');
      const wrapper = await wrapperFor(`{ services.nix-castore = { enable = true; postBuildHook = { enable = true; spoolDir = ${nixString(spool)}; }; }; }`);
      const r = await run(wrapper, [], hookEnv());
      assert.equal(r.code, 0, r.stderr);
      const entries = (await readdir(spool)).filter((n) => n.endsWith('.json'));
      assert.equal(entries.length, 1, `one spool entry: ${entries.join(' ')}`);
      const entry = JSON.parse(await readFile(join(spool, entries[0]), 'utf8'));
      assert.equal(entry.drvPath, fixtureDrv);
      assert.deepEqual(entry.outPaths, [fixtureFile]);
    });

    it('direct: pushes the outputs to the daemon of services.nix-castore.listen (a unix socket)', async () => {
      const d = await startDaemonProcess();
      const store = openStore(sameAddr(d.addr));
      try {
        const wrapper = await wrapperFor(`{ services.nix-castore = {
          enable = true; listen = [ ${nixString(`unix:${d.socket}`)} ];
          postBuildHook = { enable = true; mode = "direct"; extraArgs = [ "--strict" ]; }; }; }`);
        assert.match(await readFile(wrapper, 'utf8'), new RegExp(`^export NIX_CASTORE_STORE='${d.addr.replace(/[+.]/g, '\\$&')}'$`, 'm'));
        const r = await run(wrapper, [], hookEnv());
        assert.equal(r.code, 0, r.stderr);
        assert.ok(await store.pathInfos.get(parseAbsolute(fixtureFile).digest), `${fixtureFile} is in the daemon's store`);
        await assertStoreMatchesNix(store, [fixtureFile]);
      } finally {
        await store.close();
        await d.stop();
      }
    });

    it('direct, with authTokenFile: the daemon the module starts wants the token, and the hook sends it', async () => {
      const tokenFile = join(tmp, 'token');
      await writeFile(tokenFile, 'module-token\n', { mode: 0o600 });
      const socket = join(tmp, 'token-daemon.sock');
      const settings = `{ services.nix-castore = {
        enable = true; listen = [ ${nixString(`unix:${socket}`)} ]; authTokenFile = ${nixString(tokenFile)};
        postBuildHook = { enable = true; mode = "direct"; extraArgs = [ "--strict" ]; }; }; }`;
      const { config } = await evalModule(settings);
      const exec: string = config.systemd.services['nix-castore'].serviceConfig.ExecStart;
      const words = [...exec.matchAll(/'((?:[^']|'\\'')*)'/g)].map((m) => m[1]);
      assert.deepEqual(words.slice(words.indexOf('--auth-token-file'), words.indexOf('--auth-token-file') + 2), ['--auth-token-file', tokenFile]);
      assert.ok(!exec.includes('module-token'), 'the token is not on the command line');
      // The daemon with the module's flags after its --data (the token among them).
      const d = await startDaemonProcess({ extraArgs: words.slice(words.indexOf('/var/lib/nix-castore') + 1) });
      const store = openStore(sameAddr(d.addr));
      try {
        const wrapper = await wrapperFor(settings.replace(socket, d.socket));
        assert.ok(!(await readFile(wrapper, 'utf8')).includes('module-token'), 'the token is not in the Nix store');
        const r = await run(wrapper, [], hookEnv());
        assert.equal(r.code, 0, r.stderr);
        assert.ok(await store.pathInfos.get(parseAbsolute(fixtureFile).digest), `${fixtureFile} is in the daemon's store`);
      } finally {
        await store.close();
        await d.stop();
      }
    });
  });
});

// The compiled CLI the stand-ins run must exist (npm test builds it first).
before(async () => {
  await readFile(CLI).catch(() => {
    throw new Error(`${CLI} is missing: run \`npx tsc -p .\` (npm test does) before this test`);
  });
});
