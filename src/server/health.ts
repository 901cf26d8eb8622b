// grpc.health.v1.Health for the daemon, on top of grpc-health-check's
// HealthImplementation (Check, Watch and List; unknown names -> NOT_FOUND).
//
// Reported names: "" (the whole server, as tvix-store does) plus every
// service served by `server`. grpc-js has no public way to enumerate the
// registered services, so they are picked up from two places: the server's
// handler table at call time (a grpc-js internal, read defensively), and every
// later `server.addService()` call, which is wrapped on this instance.

import * as grpc from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';

/** `/pkg.Service/Method` -> `pkg.Service` */
function serviceOfPath(p: string): string | undefined {
  const m = /^\/([^/]+)\/[^/]+$/.exec(p);
  return m ? m[1] : undefined;
}

function registeredServices(server: grpc.Server): string[] {
  const handlers = (server as unknown as { handlers?: unknown }).handlers;
  if (!(handlers instanceof Map)) return [];
  const names = new Set<string>();
  for (const key of handlers.keys()) {
    const name = typeof key === 'string' ? serviceOfPath(key) : undefined;
    if (name) names.add(name);
  }
  return [...names];
}

export function addHealthService(server: grpc.Server): { setServing(serving: boolean): void } {
  let status: ServingStatus = 'SERVING';
  const names = new Set<string>(['', ...registeredServices(server)]);
  const health = new HealthImplementation(Object.fromEntries([...names].map((n) => [n, status])));

  const track = (name: string) => {
    if (names.has(name)) return;
    names.add(name);
    health.setStatus(name, status);
  };

  const addService = server.addService.bind(server);
  server.addService = (service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation) => {
    addService(service, implementation);
    for (const method of Object.values(service)) {
      const name = serviceOfPath(method.path);
      if (name) track(name);
    }
  };

  // Goes through the wrapper above, so the health service reports itself too.
  health.addToServer(server);

  return {
    setServing(serving: boolean): void {
      status = serving ? 'SERVING' : 'NOT_SERVING';
      for (const name of registeredServices(server)) names.add(name);
      for (const name of names) health.setStatus(name, status);
    },
  };
}
