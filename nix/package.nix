# The nix-castore package: `pkgs.callPackage ./nix/package.nix { }`.
#
# Built with buildNpmPackage, but with the dependencies from nixpkgs'
# importNpmLock instead of the default fetchNpmDeps: every tarball is a
# fetchurl checked against the `integrity` already in package-lock.json, so
# there is no npmDepsHash to compute or keep in sync (the lock file has no
# `resolved` URLs — see npm-lock.nix — which fetchNpmDeps cannot work with,
# and `npm ci` rejects it; importNpmLock's hook runs `npm install`).
#
# Installs bin/nix-castore (node + dist/src/cli/main.js) and
# bin/nix-castore-hook (the post-build hook, `nix-castore hook "$@"`).
{ lib
, stdenv
, buildNpmPackage
, importNpmLock
, fetchurl
, nodejs_22
}:

let
  packageJson = builtins.fromJSON (builtins.readFile ../package.json);
  packageLock = builtins.fromJSON (builtins.readFile ../package-lock.json);

  # Only what the build reads: a change to tests, docs or Nix files does
  # not rebuild the package.
  root = toString ../.;
  wanted = [ "package.json" "package-lock.json" "tsconfig.json" "src" "protos" "bin" ];
  src = builtins.path {
    name = "nix-castore-source";
    path = ../.;
    filter = path: _type:
      let rel = builtins.substring (builtins.stringLength root + 1) (builtins.stringLength path) path;
      in builtins.elem (builtins.head (builtins.split "/" rel)) wanted;
  };

  platform = stdenv.hostPlatform;
  npmCpu =
    if platform.isx86_64 then "x64"
    else if platform.isAarch64 then "arm64"
    else throw "nix-castore: no prebuilt BLAKE3 addon is known for ${platform.system}";

  deps = import ./npm-lock.nix {
    inherit packageJson packageLock;
    cpu = npmCpu;
    libc = if platform.isMusl then "musl" else "glibc";
  };

  # @napi-rs/blake-hash ships its native addon as per-platform optional
  # packages. The lock file records only the x86_64 ones, and 1.3.6 (the
  # locked version) was never published for linux-arm64-gnu: use the newest
  # that was (1.3.4, same N-API interface: Blake3Hasher update/digestBuffer).
  # The loader tries <package dir>/blake.<platform>.node first, so the file
  # is put there; the install check below proves it loads.
  extraAddon =
    if platform.isAarch64 && !platform.isMusl then {
      file = "blake.linux-arm64-gnu.node";
      tarball = fetchurl {
        url = "https://registry.npmjs.org/@napi-rs/blake-hash-linux-arm64-gnu/-/blake-hash-linux-arm64-gnu-1.3.4.tgz";
        hash = "sha512-7HV+HPtByIleTPyh3idXtzlot9BWzJDrfbzsLgv6TYvfmQS6cXNgXNJkgNRtUt4HrSmQw1e361u2HmXp4ToPIA==";
      };
    } else null;

  # BLAKE3 of the empty input.
  emptyBlake3 = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
in
buildNpmPackage {
  pname = "nix-castore";
  version = packageJson.version;
  inherit src;

  nodejs = nodejs_22;

  npmDeps = importNpmLock {
    package = deps.packageJson;
    packageLock = deps.packageLock;
  };
  npmConfigHook = importNpmLock.npmConfigHook;

  # Compile src/ only (tsconfig.json also includes test/ and bench/, which
  # are not in the source above); output lands in dist/src as with `npm run build`.
  buildPhase = ''
    runHook preBuild
    echo '{ "extends": "./tsconfig.json", "include": ["src"] }' > tsconfig.package.json
    node_modules/.bin/tsc -p tsconfig.package.json
    runHook postBuild
  '';

  # npmInstallHook has installed package.json's "files" (bin, dist/src,
  # protos), the production node_modules — the platform's prebuilt addon
  # packages are optional *production* dependencies, so pruning keeps them —
  # and a node wrapper for each "bin" entry. The hook is a shell script:
  # its wrapper (which would run it with node) is replaced by the script.
  # npm's wrapper runs node on main.js directly, so main.js's
  # `#!/usr/bin/env -S node …` flags would not be read; NODE_OPTIONS refuses
  # --initial-old-space-size, so bin/nix-castore is made here instead, with
  # the same flags as that line (see the comment under it).
  postInstall = ''
    install -Dm755 bin/nix-castore-hook "$out/bin/nix-castore-hook"
    rm "$out/bin/nix-castore"
    makeWrapper ${nodejs_22}/bin/node "$out/bin/nix-castore" \
      --add-flags "--max-semi-space-size=4 --initial-old-space-size=32 $out/lib/node_modules/nix-castore/dist/src/cli/main.js"
  '' + (if extraAddon == null then "" else ''
    addonDir=$out/lib/node_modules/nix-castore/node_modules/@napi-rs/blake-hash
    if [ ! -e "$addonDir/${extraAddon.file}" ]; then
      tar -xzf ${extraAddon.tarball} -C "$TMPDIR" package/${extraAddon.file}
      install -m444 "$TMPDIR/package/${extraAddon.file}" "$addonDir/${extraAddon.file}"
    fi
  '');

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    "$out/bin/nix-castore" --help > /dev/null
    "$out/bin/nix-castore-hook" --help > /dev/null
    # The native BLAKE3 addon loads (the CLI only loads it when hashing).
    (cd "$out/lib/node_modules/nix-castore" && ${nodejs_22}/bin/node --input-type=module -e '
      const { blake3 } = await import("./dist/src/castore/digest.js");
      const got = blake3(new Uint8Array(0)).toString("hex");
      if (got !== "${emptyBlake3}") throw new Error("BLAKE3 of nothing: " + got);
    ')
    runHook postInstallCheck
  '';

  passthru = {
    # What importNpmLock was given (for inspection and the test suite).
    npmLock = deps;
  };

  meta = {
    description = "Nix store paths into a tvix-store compatible content-addressed store, and served back";
    license = lib.licenses.mit;
    mainProgram = "nix-castore";
    platforms = [ "x86_64-linux" "aarch64-linux" ];
  };
}
