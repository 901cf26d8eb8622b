// The layers of src/, bottom to top (README, "Layout of the code"). A folder
// may import its own layer's lower entries and every layer below, never one
// above: `npm test` runs `npm run lint:layers` first, so an upward import
// fails the tests with the rule's name and why.
//
// Within a layer, a folder may only import the folders listed before it.
const layers = [
  { name: 'formats', folders: ['util', 'proto', 'metrics', 'nix'], why: 'pure formats and small utilities: no services, no I/O policy' },
  { name: 'model', folders: ['castore', 'closure', 'store'], why: 'interfaces, rules and in-process/on-disk backends; no transport, no S3/PostgreSQL' },
  { name: 'remote', folders: ['grpc', 'scaleout'], why: 'gRPC clients and the S3 + PostgreSQL backends; they do not know each other' },
  { name: 'composition', folders: ['addr'], why: 'the one place that turns an address into services' },
  { name: 'features', folders: ['upload', 'fsck', 'gc', 'cache'], why: 'independent features: each uses the services, none uses another' },
  { name: 'serving', folders: ['server'], why: 'the daemon: may use features, is used only by the CLI' },
  { name: 'entry', folders: ['cli'], why: 'commands: the top, imported by nothing in src/' },
];

// Folders of a layer that do not depend on each other at all.
const independent = new Set(['remote', 'features']);

const folderRe = (folders) => `^src/(${folders.join('|')})/`;
const forbidden = [];
layers.forEach((layer, i) => {
  const above = layers.slice(i + 1).flatMap((l) => l.folders);
  if (above.length) {
    forbidden.push({
      name: `${layer.name}-imports-upwards`,
      comment: `src/{${layer.folders.join(',')}}/ is the '${layer.name}' layer (${layer.why}); it must not import the layers above it (${above.join(', ')}). Move the shared piece down, or pass it in.`,
      severity: 'error',
      from: { path: folderRe(layer.folders) },
      to: { path: folderRe(above) },
    });
  }
  layer.folders.forEach((folder, j) => {
    const later = independent.has(layer.name) ? layer.folders.filter((f) => f !== folder) : layer.folders.slice(j + 1);
    if (!later.length) return;
    forbidden.push({
      name: `${folder}-imports-its-layer`,
      comment: independent.has(layer.name)
        ? `src/${folder}/ and src/{${later.join(',')}}/ are independent parts of the '${layer.name}' layer: move what they share down a layer.`
        : `within the '${layer.name}' layer, src/${folder}/ comes below src/{${later.join(',')}}/ and must not import them.`,
      severity: 'error',
      from: { path: `^src/${folder}/` },
      to: { path: folderRe(later) },
    });
  });
});

const known = layers.flatMap((l) => l.folders);
forbidden.push(
  {
    name: 'folder-without-a-layer',
    comment: `every folder of src/ belongs to a layer: add it to .dependency-cruiser.cjs (and the README's table).`,
    severity: 'error',
    from: { path: '^src/', pathNot: folderRe(known) },
    to: {},
  },
  {
    name: 'folder-without-a-layer-orphan',
    comment: `every folder of src/ belongs to a layer: add it to .dependency-cruiser.cjs (and the README's table).`,
    severity: 'error',
    from: { path: '^src/', pathNot: folderRe(known), orphan: true },
    to: {},
  },
  {
    name: 'no-circular',
    comment: 'modules must not import each other in a loop: move what both need into a third module.',
    severity: 'error',
    from: { path: '^src/' },
    to: { circular: true },
  },
  {
    name: 'src-imports-tests',
    comment: 'src/ must not import test/ or bench/.',
    severity: 'error',
    from: { path: '^src/' },
    to: { path: '^(test|bench)/' },
  },
);

module.exports = {
  forbidden,
  options: {
    // swc parses TypeScript (type-only imports included): typescript@7 has
    // no compiler API for dependency-cruiser to use.
    parser: 'swc',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
  },
};
