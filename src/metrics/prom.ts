// prom-client's metric classes without its index module, which also loads
// the default collectors, the Pushgateway and the cluster aggregator: about
// 100 ms of every daemon start, for pieces a process only needs once it
// serves /metrics (collectDefaultMetrics, loaded then) or never. The
// package has no "exports" map, so these are its own files; the types are
// its published ones.
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

const require = createRequire(import.meta.url);

export const Registry = require('prom-client/lib/registry') as typeof Prom.Registry;
export type Registry = Prom.Registry;
export const Counter = require('prom-client/lib/counter') as typeof Prom.Counter;
export type Counter<T extends string = string> = Prom.Counter<T>;
export const Gauge = require('prom-client/lib/gauge') as typeof Prom.Gauge;
export type Gauge<T extends string = string> = Prom.Gauge<T>;
export const Histogram = require('prom-client/lib/histogram') as typeof Prom.Histogram;

/** The library's default process metrics; its collectors are loaded on the first call. */
export function collectDefaultMetrics(config: Prom.DefaultMetricsCollectorConfiguration<Prom.RegistryContentType>): void {
  (require('prom-client/lib/defaultMetrics') as typeof Prom.collectDefaultMetrics)(config);
}
