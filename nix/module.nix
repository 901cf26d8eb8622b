# NixOS module: the nix-castore daemon as a systemd service, and optionally
# Nix's post-build hook pushing every build into it.
#
#   services.nix-castore = {
#     enable = true;
#     listen = [ "[::1]:8000" "unix:/run/nix-castore/daemon.sock" ];
#     postBuildHook.enable = true;          # mode "queue" (default) or "direct"
#   };
#
# The hook (`nix-castore hook`, run by nix-daemon as root after each build)
# is configured through a wrapper script that exports
#   NIX_CASTORE_HOOK_MODE  queue | direct
#   NIX_CASTORE_STORE      where direct mode pushes (default: this daemon)
#   NIX_CASTORE_SPOOL      the queue directory
# and execs ${package}/bin/nix-castore-hook. In queue mode the hook only
# writes a spool entry (builds wait ~70 ms, never on the network) and the
# daemon, started with `--drain-spool`, uploads the queue into its own store.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf mkMerge types;

  cfg = config.services.nix-castore;
  hook = cfg.postBuildHook;

  # Single-quoted shell words.
  q = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s) + "'";
  shellArgs = args: builtins.concatStringsSep " " (map q args);

  # A --listen value as a client address.
  storeAddrOf = listen:
    if builtins.substring 0 5 listen == "unix:"
    then "grpc+unix://" + builtins.substring 5 (builtins.stringLength listen) listen
    else "grpc+http://" + listen;

  queue = hook.enable && hook.mode == "queue";

  # The daemon's store is elsewhere (S3 + PostgreSQL, another daemon), not a local directory.
  remoteStore = cfg.store != null && !(lib.hasPrefix "file://" cfg.store) && !(lib.hasPrefix "memory:" cfg.store);

  daemonArgs =
    builtins.concatLists (map (l: [ "--listen" l ]) cfg.listen)
    ++ (if cfg.store == null then [ "--data" cfg.dataDir ] else [ "--store" cfg.store ])
    ++ (if cfg.authTokenFile == null then [ ] else [ "--auth-token-file" cfg.authTokenFile ])
    ++ (if queue then [ "--drain-spool" hook.spoolDir ] else [ ])
    ++ (if cfg.gc.enable then [ "--gc-interval" cfg.gc.interval ] else [ ])
    ++ (if cfg.gc.enable && cfg.gc.keepSince != null then [ "--gc-keep-since" cfg.gc.keepSince ] else [ ])
    ++ (if cfg.gc.enable && cfg.gc.maxSize != null then [ "--gc-max-size" cfg.gc.maxSize ] else [ ])
    ++ (if cfg.gc.enable && cfg.gc.grace != null then [ "--gc-grace" cfg.gc.grace ] else [ ])
    ++ (if cfg.gc.enable && cfg.gc.memory != null then [ "--gc-memory" cfg.gc.memory ] else [ ])
    ++ builtins.concatLists (lib.mapAttrsToList (name: flag: let v = cfg.limits.${name}; in if v == null then [ ] else [ flag (toString v) ]) limitFlags)
    ++ cfg.extraArgs;

  # services.nix-castore.limits.<name> → the daemon's flag.
  limitFlags = {
    maxMessageSize = "--max-message-size";
    maxConnections = "--max-connections";
    handshakeTimeout = "--handshake-timeout";
    idleTimeout = "--idle-timeout";
    maxBufferedBytes = "--max-buffered-bytes";
    maxConcurrentStreams = "--max-concurrent-streams";
    streamStallTimeout = "--stream-stall-timeout";
    httpWriteBuffer = "--http-write-buffer";
  };
  limitOption = what: example: type: mkOption {
    type = types.nullOr type;
    default = null;
    inherit example;
    description = "${what}; null: the daemon's default (README, \"Limits\").";
  };

  hookWrapper = pkgs.writeShellScript "nix-castore-post-build-hook" ''
    export NIX_CASTORE_HOOK_MODE=${q hook.mode}
    export NIX_CASTORE_STORE=${q hook.store}
    export NIX_CASTORE_SPOOL=${q hook.spoolDir}
    ${lib.optionalString (cfg.authTokenFile != null) "export NIX_CASTORE_AUTH_TOKEN_FILE=${q cfg.authTokenFile}"}
    export PATH=${config.nix.package}/bin''${PATH:+:$PATH}
    exec ${cfg.package}/bin/nix-castore-hook ${shellArgs hook.extraArgs} "$@"
  '';
in
{
  options.services.nix-castore = {
    enable = mkEnableOption "the nix-castore daemon (tvix-store compatible castore over gRPC)";

    package = mkOption {
      type = types.package;
      default = pkgs.nix-castore or (pkgs.callPackage ./package.nix { });
      defaultText = lib.literalExpression "pkgs.nix-castore";
      description = "The nix-castore package.";
    };

    listen = mkOption {
      type = types.listOf types.str;
      default = [ "[::1]:8000" ];
      example = [ "[::1]:8000" "unix:/run/nix-castore/daemon.sock" ];
      description = ''
        Addresses to serve on (`--listen`): `host:port`, `[v6]:port` or
        `unix:/abs/path`. The default is loopback only. /run/nix-castore
        is the service's runtime directory, a place for sockets (created
        with mode 0660, owned by the service user; root can connect).
      '';
    };

    dataDir = mkOption {
      type = types.str;
      default = "/var/lib/nix-castore";
      description = "The on-disk store (`--data`).";
    };

    user = mkOption {
      type = types.str;
      default = "nix-castore";
      description = "User the daemon runs as (created when left at the default).";
    };

    group = mkOption {
      type = types.str;
      default = "nix-castore";
      description = "Group the daemon runs as (created when left at the default).";
    };

    store = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "s3://my-castore/prod?region=eu-west-1&index=postgres://castore@db.internal/castore";
      description = ''
        Serve this store address (`--store`) instead of the on-disk store in
        `dataDir`: e.g. the scale-out store, blob bytes in S3 and the rest
        in PostgreSQL, which any number of daemons can serve at once.
        Credentials go in `environmentFile`.
      '';
    };

    environmentFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/nix-castore.env";
      description = ''
        A systemd EnvironmentFile for the daemon, for secrets kept out of
        the Nix store: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or
        AWS_PROFILE), AWS_REGION, PGPASSWORD.
      '';
    };

    authTokenFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/nix-castore-token";
      description = ''
        A file holding the write token (`--auth-token-file`): writes, and
        with `--http` every binary-cache request, need it. The post-build
        hook (run by nix-daemon as root) sends it in direct mode
        (NIX_CASTORE_AUTH_TOKEN_FILE). A string, not a Nix path: a path
        literal would copy the token into the world-readable Nix store.
        The file must be readable by the service's user.
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--http" "127.0.0.1:8080" ];
      description = "More arguments for `nix-castore daemon`.";
    };

    gc = {
      enable = mkEnableOption "scheduled garbage collection by the daemon (`nix-castore gc`; pins and paths used recently are kept)";
      interval = mkOption {
        type = types.str;
        default = "1d";
        description = "How often the daemon collects (`--gc-interval`), e.g. \"6h\".";
      };
      keepSince = mkOption {
        type = types.nullOr types.str;
        default = "30d";
        description = "Keep paths pushed or read within this time (`--gc-keep-since`), with their closures; null: only pins (and `maxSize`).";
      };
      maxSize = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "500G";
        description = "Also keep the most recently used paths while their NARs fit in this size (`--gc-max-size`).";
      };
      grace = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "2h";
        description = "Never delete what was written or read this recently (`--gc-grace`); null: the daemon's default.";
      };
      memory = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "256MiB";
        description = "Memory a collection may hold for its marks before it spills to scratch files (`--gc-memory`); null: the daemon's default (64MiB).";
      };
    };

    limits = {
      maxMessageSize = limitOption "Largest gRPC message, in bytes (`--max-message-size`)" 4194304 types.ints.positive;
      maxConnections = limitOption "Connections per listener, gRPC and HTTP (`--max-connections`)" 1024 types.ints.positive;
      handshakeTimeout = limitOption "Seconds a new connection has to send its preface or first request (`--handshake-timeout`)" 10 types.ints.positive;
      idleTimeout = limitOption "Seconds a connection may move no bytes either way (`--idle-timeout`)" 300 types.ints.positive;
      maxBufferedBytes = limitOption "Bytes held in memory for clients, daemon-wide, with K/M/G suffixes (`--max-buffered-bytes`)" "512M" types.str;
      maxConcurrentStreams = limitOption "Concurrent streams per gRPC connection (`--max-concurrent-streams`)" 1000 types.ints.positive;
      streamStallTimeout = limitOption "Seconds a stream may wait on its client while its connection is busy (`--stream-stall-timeout`)" 60 types.ints.positive;
      httpWriteBuffer = limitOption "Bytes queued per HTTP response before waiting for the client, with K/M/G suffixes (`--http-write-buffer`)" "256K" types.str;
    };

    postBuildHook = {
      enable = mkEnableOption "Nix's post-build-hook uploading every build output (with its closure) to the castore";

      mode = mkOption {
        type = types.enum [ "queue" "direct" ];
        default = "queue";
        description = ''
          `queue`: the hook appends the build to a durable spool and returns
          at once; the daemon (`--drain-spool`) uploads it, retrying until it
          is stored. `direct`: the hook uploads before Nix goes on (the
          next build waits; a failure is logged, not fatal unless
          `--strict` is in `extraArgs`).
        '';
      };

      store = mkOption {
        type = types.str;
        default = storeAddrOf (builtins.head cfg.listen);
        defaultText = lib.literalExpression ''the first of services.nix-castore.listen as a client address, e.g. "grpc+http://[::1]:8000"'';
        description = "Where the hook pushes in direct mode (NIX_CASTORE_STORE).";
      };

      spoolDir = mkOption {
        type = types.str;
        default = "/var/spool/nix-castore";
        description = "The queue of the hook in queue mode (NIX_CASTORE_SPOOL), drained by the daemon.";
      };

      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "--timeout" "120" ];
        description = "More arguments for `nix-castore hook`.";
      };
    };
  };

  config = mkMerge [
    (mkIf cfg.enable {
      users.users = mkIf (cfg.user == "nix-castore") {
        nix-castore = {
          isSystemUser = true;
          group = cfg.group;
          home = cfg.dataDir;
          description = "nix-castore daemon";
        };
      };
      users.groups = mkIf (cfg.group == "nix-castore") { nix-castore = { }; };

      systemd.tmpfiles.rules = [ "d ${q cfg.dataDir} 0750 ${cfg.user} ${cfg.group} - -" ];

      systemd.services.nix-castore = {
        description = "nix-castore daemon";
        wantedBy = [ "multi-user.target" ];
        # A remote store (S3 + PostgreSQL, another daemon) must be reachable
        # at start: wait for the network to be up, not only configured.
        after = [ "network.target" ] ++ lib.optional remoteStore "network-online.target";
        wants = lib.optional remoteStore "network-online.target";
        # Keep restarting while the store is out of reach: with systemd's
        # default limit (5 starts in 10 s) a daemon that exits ~1 s after
        # each start (its PostgreSQL down at boot) would be given up on.
        startLimitIntervalSec = 0;
        # `nix path-info` for the spool entries it drains.
        path = [ config.nix.package ];
        environment.XDG_CACHE_HOME = "/var/cache/nix-castore";
        serviceConfig = {
          ExecStart = "${cfg.package}/bin/nix-castore daemon ${shellArgs daemonArgs}";
          User = cfg.user;
          Group = cfg.group;
          WorkingDirectory = cfg.dataDir;
          RuntimeDirectory = "nix-castore";
          CacheDirectory = "nix-castore";
          Restart = "on-failure";
          RestartSec = 2;
          ReadWritePaths = [ cfg.dataDir ] ++ (if queue then [ hook.spoolDir ] else [ ]);
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
          PrivateDevices = true;
          NoNewPrivileges = true;
          ProtectKernelTunables = true;
          ProtectKernelModules = true;
          ProtectControlGroups = true;
          RestrictSUIDSGID = true;
          LockPersonality = true;
        } // (if cfg.environmentFile == null then { } else { EnvironmentFile = cfg.environmentFile; });
      };
    })

    (mkIf (cfg.enable && cfg.gc.enable) {
      assertions = [{
        assertion = (cfg.store == null || lib.hasPrefix "file://" cfg.store || lib.hasPrefix "s3://" cfg.store)
          && (cfg.gc.keepSince != null || cfg.gc.maxSize != null);
        message = "services.nix-castore.gc needs a store with a collector (the on-disk store: store = null or file:///…; or s3://…?index=postgres://…) and keepSince or maxSize.";
      }];
    })

    (mkIf hook.enable {
      assertions = [{
        assertion = hook.mode != "queue" || cfg.enable;
        message = "services.nix-castore.postBuildHook.mode = \"queue\" needs services.nix-castore.enable: the daemon drains the queue.";
      }];

      # Root (the hook) writes entries; the daemon's user removes them.
      systemd.tmpfiles.rules = if queue then [ "d ${q hook.spoolDir} 0750 ${cfg.user} ${cfg.group} - -" ] else [ ];

      nix.settings.post-build-hook = hookWrapper;
    })
  ];
}
