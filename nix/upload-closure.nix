# Uploads the closure of some store paths into a castore from inside a Nix
# build, with `nix-castore copy` — the recipe tvix uses in its own tests
# (exportReferencesGraph + a store daemon in the build), packaged.
#
# callPackage style: the dependencies are arguments, so the flake passes
# nixpkgs' real `runCommand` and the packaged CLI while the test suite passes
# small stand-ins built on builtins.derivation (no nixpkgs there).
#
#   runCommand   nixpkgs' `runCommand name env script` (bash, coreutils on PATH)
#   nix-castore  a package with bin/nix-castore
#
# The result is a function:
#
#   uploadClosure {
#     name ? "upload-closure";
#     paths;                   # derivation / store path, or a list of them
#     storeAddr ? null;        # null: hermetic (below); else push there
#     structuredAttrs ? true;  # closure metadata from .attrs.json (with NAR
#                              # hashes) or the legacy text files (hashes are
#                              # computed while uploading)
#     viaDaemon ? false;       # hermetic only: go through a daemon started
#                              # inside the build, over a unix socket
#     signKeyFile ? null;      # absolute path (string!) of a Nix secret key
#     authTokenFile ? null;    # storeAddr only: absolute path (string!) of the
#                              # file holding the daemon's write token
#                              # (its --auth-token-file); read by the builder
#     jobs ? null;             # store paths ingested at once (--jobs)
#   }
#
# Hermetic (storeAddr = null): $out is an on-disk castore (file://$out)
# holding every path of the closure, plus $out/manifest.json; serve it with
# `nix-castore daemon --data ./result` (the daemon only reads it).
#
# Remote (storeAddr = "grpc+http://host:port", …): the closure is pushed to
# that store and $out holds only manifest.json. This needs network access
# from the build: the derivation sets __noChroot = true, which Nix honours
# with `sandbox = relaxed` (or `sandbox = false`); with `sandbox = true` the
# build is refused. Alternatively use an impure derivation (experimental
# feature impure-derivations, __impure = true) via `overrideAttrs`. The push
# happens once per derivation: substitutes are disabled for it, and a
# rebuild needs a new name (or `nix build --rebuild`). A daemon started with
# --auth-token-file takes the push only with `authTokenFile` (the builder's
# environment is clean: NIX_CASTORE_AUTH_TOKEN_FILE from outside never
# reaches it).
{ runCommand, nix-castore, lib ? null, ... }:

{ name ? "upload-closure"
, paths
, storeAddr ? null
, structuredAttrs ? true
, viaDaemon ? false
, signKeyFile ? null
, authTokenFile ? null
, jobs ? null
}:

let
  pathList = if builtins.isList paths then paths else [ paths ];
  count = builtins.length pathList;
  remote = storeAddr != null;

  # Single-quoted shell word.
  q = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s) + "'";

  cli = "${nix-castore}/bin/nix-castore";

  # The legacy exportReferencesGraph takes [ name1 path1 name2 path2 … ] and
  # writes one file per pair (a name given twice is overwritten), so each
  # root gets its own file; several are merged below.
  legacyNames =
    if count == 1 then [ "closure" ] else builtins.genList (i: "closure-${toString i}") count;
  legacyGraph = builtins.concatLists (builtins.genList (i: [ (builtins.elemAt legacyNames i) (builtins.elemAt pathList i) ]) count);

  closureSource =
    if structuredAttrs then ""                      # copy reads .attrs.json by itself
    else if count == 1 then "--closure-file \"$NIX_BUILD_TOP/closure\""
    else "--closure-file \"$NIX_BUILD_TOP/closure.merged\"";

  # Several legacy files describe overlapping closures; copy wants each path
  # once. Records are: path, deriver line, reference count, references.
  mergeLegacy = ''
    declare -A seen=()
    : > "$NIX_BUILD_TOP/closure.merged"
    for f in ${builtins.concatStringsSep " " (map (n: "\"$NIX_BUILD_TOP/${n}\"") legacyNames)}; do
      while IFS= read -r p; do
        IFS= read -r deriver
        IFS= read -r n
        record="$p"$'\n'"$deriver"$'\n'"$n"
        for ((i = 0; i < n; i++)); do
          IFS= read -r ref
          record+=$'\n'"$ref"
        done
        if [[ -z ''${seen[$p]+x} ]]; then
          seen[$p]=1
          printf '%s\n' "$record" >> "$NIX_BUILD_TOP/closure.merged"
        fi
      done < "$f"
    done
  '';

  copyFlags = builtins.concatStringsSep " " (
    (if closureSource == "" then [ ] else [ closureSource ])
    ++ [ "--manifest \"$out/manifest.json\"" ]
    ++ (if signKeyFile != null then [ "--sign-key-file ${q (toString signKeyFile)}" ] else [ ])
    ++ (if jobs != null then [ "--jobs ${q (toString jobs)}" ] else [ ])
  );

  # The output path: $out without structured attrs (and with nixpkgs' stdenv,
  # which exports it); with structured attrs and a plain builder it is only
  # in .attrs.sh / .attrs.json (Nix 2.8 sets NIX_ATTRS_*_FILE to a wrong path
  # in sandboxed builds, hence the fallback to $NIX_BUILD_TOP).
  findOut = ''
    if [ -z "''${out:-}" ]; then
      attrsSh=''${NIX_ATTRS_SH_FILE:-}
      [ -f "$attrsSh" ] || attrsSh=$NIX_BUILD_TOP/.attrs.sh
      source "$attrsSh"
      out=''${outputs[out]}
    fi
  '';

  # The file's name only (a string: a path literal would copy the token into
  # the store); copy reads it.
  tokenEnv =
    if authTokenFile == null then ""
    else "export NIX_CASTORE_AUTH_TOKEN_FILE=${q (toString authTokenFile)}\n";

  copyDirect = target: ''
    ${tokenEnv}${cli} copy --store ${target} ${copyFlags}
  '';

  # As tvix's recipes do: a daemon in the background on a socket in the build
  # directory, wait for its health check, copy through gRPC, stop it.
  copyViaDaemon = ''
    sock=$NIX_BUILD_TOP/castore.sock
    ${cli} daemon --data "$out" --listen "unix:$sock" &
    daemonPid=$!
    trap 'kill "$daemonPid" 2>/dev/null || true' EXIT
    ${cli} health --wait 30 "grpc+unix://$sock"
    ${cli} copy --store "grpc+unix://$sock" ${copyFlags}
    kill -TERM "$daemonPid"
    wait "$daemonPid"   # non-zero (an unclean stop) fails the build
    trap - EXIT
  '';

  script = ''
    set -euo pipefail
    ${findOut}
    mkdir -p "$out"
    ${if !structuredAttrs && count > 1 then mergeLegacy else ""}
    ${if remote then copyDirect (q storeAddr)
      else if viaDaemon then copyViaDaemon
      else copyDirect "\"file://$out\""}
  '';

  env =
    (if structuredAttrs then {
      __structuredAttrs = true;
      exportReferencesGraph.closure = pathList;
    } else {
      exportReferencesGraph = legacyGraph;
    })
    // (if remote then {
      # Network access from the build (see above), and never substitute the
      # result: that would skip the push.
      __noChroot = true;
      allowSubstitutes = false;
      preferLocalBuild = true;
    } else { });
in
if count == 0 then throw "uploadClosure: `paths` is empty"
else if remote && viaDaemon then throw "uploadClosure: viaDaemon applies to the hermetic mode only (storeAddr = null)"
else if !remote && authTokenFile != null then throw "uploadClosure: authTokenFile goes with storeAddr (a hermetic result needs no token)"
else runCommand name env script
