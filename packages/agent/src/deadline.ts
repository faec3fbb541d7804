/**
 * Resolves or rejects as `work` does, unless `timeoutMs` passes first: then
 * rejects with `onTimeout()`. `work` is not cancelled (engine calls cannot
 * be); it keeps running, and its outcome is ignored.
 */
export function withDeadline<T>(work: Promise<T>, timeoutMs: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), timeoutMs);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
