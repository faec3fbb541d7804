/**
 * Freezes `value` and everything reachable from it, and returns it. Records
 * shared by reference between a store and its readers are frozen so that a
 * reader that tries to change one fails loudly instead of corrupting the store.
 */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}
