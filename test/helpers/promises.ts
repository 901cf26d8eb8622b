// Promises created while a function runs, counted with async_hooks (which
// sees every promise this process creates): tests bound per-file or
// per-frame costs with it, a count rather than a time.
import { createHook } from 'node:async_hooks';

export async function promisesDuring(f: () => Promise<unknown>): Promise<number> {
  let n = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') n++;
    },
  });
  hook.enable();
  try {
    await f();
  } finally {
    hook.disable();
  }
  return n;
}
