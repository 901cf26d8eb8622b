# The npm dependencies of the package build, as package.json + lock file
# objects for nixpkgs' importNpmLock (one fetchurl per tarball, each checked
# by the lock's own `integrity`: no npmDepsHash to keep up to date).
#
# Why not the lock file as it is: it is written with npm's
# `omit-lockfile-registry-resolved`, so no entry has a `resolved` URL, and
# both prefetch-npm-deps (buildNpmPackage's default) and importNpmLock skip
# such entries — nothing would be fetched and the offline install would
# fail. This function
#   * keeps what the build needs: the runtime dependencies and the
#     devDependencies named in `buildDevDependencies` (the TypeScript
#     compiler and Node's types), with everything they pull in — found by
#     Node's resolution over the lock's `node_modules/…` keys; other
#     devDependencies (buf, …) and their binaries are left out;
#   * gives each kept entry that can be installed on the host (npm's `os`,
#     `cpu` and `libc` fields) its registry URL; optional packages for other
#     platforms stay in the lock without one, so they are never fetched.
#
# Only builtins are used, so the test suite evaluates it without nixpkgs.
{ packageJson
, packageLock
, os ? "linux"
, cpu                                    # npm's name: "x64", "arm64", …
, libc ? "glibc"
, buildDevDependencies ? [ "typescript" "@types/node" ]
, registry ? "https://registry.npmjs.org"
}:

let
  packages = packageLock.packages;

  last = l: builtins.elemAt l (builtins.length l - 1);

  # "node_modules/a/node_modules/@s/b" -> "@s/b" (or the alias target's name).
  nameOf = key: entry: entry.name or (last (builtins.split "node_modules/" key));

  # "@s/b" -> "b"
  baseName = name: last (builtins.split "/" name);

  tarballUrl = name: version: "${registry}/${name}/-/${baseName name}-${version}.tgz";

  # The key of the package one level up: "node_modules/a/node_modules/b" -> "node_modules/a".
  parentOf = key:
    let m = builtins.match "(.*)/node_modules/(@[^/]+/)?[^/]+" key;
    in if m == null then "" else builtins.head m;

  # Node's lookup: <from>/node_modules/<dep>, then each ancestor's.
  resolve = from: dep:
    let candidate = (if from == "" then "" else from + "/") + "node_modules/" + dep;
    in if packages ? ${candidate} then candidate
       else if from == "" then null
       else resolve (parentOf from) dep;

  depNames = e:
    builtins.attrNames ((e.dependencies or { }) // (e.optionalDependencies or { }) // (e.peerDependencies or { }));

  devKept = builtins.listToAttrs (map (n: { name = n; value = packageJson.devDependencies.${n}; })
    (builtins.filter (n: (packageJson.devDependencies or { }) ? ${n}) buildDevDependencies));

  rootDeps = builtins.attrNames ((packageJson.dependencies or { }) // (packageJson.optionalDependencies or { }) // devKept);

  edges = from: names:
    builtins.filter (x: x.key != null) (map (d: { key = resolve from d; }) names);

  reachable = builtins.genericClosure {
    startSet = edges "" rootDeps;
    operator = item: edges item.key (depNames packages.${item.key});
  };

  # npm's os/cpu/libc fields: a list of allowed values, or of "!excluded" ones.
  allows = field: value: entry:
    let
      l = entry.${field} or [ ];
      allowed = builtins.filter (v: builtins.substring 0 1 v != "!") l;
    in !(builtins.elem "!${value}" l) && (allowed == [ ] || builtins.elem value allowed);

  installable = e: allows "os" os e && allows "cpu" cpu e && (os != "linux" || allows "libc" libc e);

  withUrl = key: e:
    if installable e && !(e ? resolved) && !(e.link or false) && e ? version && e ? integrity
    then e // { resolved = tarballUrl (nameOf key e) e.version; }
    else e;

  kept = builtins.listToAttrs (map (x: { name = x.key; value = withUrl x.key packages.${x.key}; }) reachable);

  rootEntry = packages."" // (if packages."" ? devDependencies then { devDependencies = devKept; } else { });
in
{
  packageJson = packageJson // (if packageJson ? devDependencies then { devDependencies = devKept; } else { });
  packageLock = packageLock // { packages = { "" = rootEntry; } // kept; };
}
