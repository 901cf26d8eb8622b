{
  description = "nix-castore: Nix store paths into a tvix-store compatible castore (gRPC daemon, closure uploader, post-build hook)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);

      pkgsFor = system: nixpkgs.legacyPackages.${system};
      packageFor = pkgs: pkgs.nix-castore or (pkgs.callPackage ./nix/package.nix { });

      # The closure-upload helper for a package set: see nix/upload-closure.nix.
      mkUploadClosure = pkgs: import ./nix/upload-closure.nix {
        inherit (pkgs) runCommand lib;
        nix-castore = packageFor pkgs;
      };
    in
    {
      lib = { inherit mkUploadClosure; };

      overlays.default = final: prev: {
        nix-castore = final.callPackage ./nix/package.nix { };
      };

      nixosModules.default = { imports = [ ./nix/module.nix ]; };
      nixosModules.nix-castore = self.nixosModules.default;

      packages = forAllSystems (system:
        let
          pkgs = pkgsFor system;
          nix-castore = packageFor pkgs;
        in
        {
          inherit nix-castore;
          default = nix-castore;

          # `nix build .#uploadClosure`: the closure of GNU hello as an
          # on-disk castore in ./result (serve it with
          # `nix-castore daemon --data ./result`), with result/manifest.json.
          uploadClosure = mkUploadClosure pkgs {
            name = "hello-closure";
            paths = [ pkgs.hello ];
          };
        });

      apps = forAllSystems (system:
        let
          pkgs = pkgsFor system;
          nix-castore = self.packages.${system}.nix-castore;
          # `nix run .#daemon -- [--listen ADDR] [--data DIR] …`
          daemon = pkgs.writeShellScript "nix-castore-daemon" ''
            exec ${nix-castore}/bin/nix-castore daemon "$@"
          '';
        in
        {
          daemon = {
            type = "app";
            program = "${daemon}";
            meta.description = "nix-castore daemon on its default store ($XDG_DATA_HOME/nix-castore, [::1]:8000)";
          };
          default = {
            type = "app";
            program = "${nix-castore}/bin/nix-castore";
            meta.description = "the nix-castore command";
          };
        });

      checks = forAllSystems (system:
        let
          pkgs = pkgsFor system;
          upload = mkUploadClosure pkgs;
        in
        {
          package = self.packages.${system}.nix-castore;
          uploadClosure = self.packages.${system}.uploadClosure;
          uploadClosureLegacy = upload {
            name = "hello-closure-legacy";
            paths = [ pkgs.hello ];
            structuredAttrs = false;
          };
          uploadClosureViaDaemon = upload {
            name = "hello-closure-via-daemon";
            paths = [ pkgs.hello ];
            viaDaemon = true;
          };
          # The module on a real NixOS: the queued hook uploads a build, the
          # daemon drains it into its store.
          nixos-module = pkgs.testers.runNixOSTest {
            name = "nix-castore-module";
            nodes.machine = { ... }: {
              imports = [ self.nixosModules.default ];
              services.nix-castore = {
                enable = true;
                package = self.packages.${system}.nix-castore;
                postBuildHook.enable = true;
              };
              nix.settings.substituters = pkgs.lib.mkForce [ ];
              environment.systemPackages = [ self.packages.${system}.nix-castore ];
            };
            testScript = ''
              machine.wait_for_unit("nix-castore.service")
              machine.wait_until_succeeds("nix-castore health grpc+http://[::1]:8000")
              out = machine.succeed(
                "nix-build --no-out-link -E 'derivation { name = \"castore-vm-test\"; system = builtins.currentSystem; "
                "builder = \"/bin/sh\"; args = [ \"-c\" \"echo hi > $out\" ]; }'"
              ).strip()
              machine.wait_until_succeeds(f"nix-castore path-info --store grpc+http://[::1]:8000 {out}", timeout=60)
            '';
          };
        });
    };
}
