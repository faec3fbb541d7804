/** The error a call was refused with; throws (failing the test) if the call succeeded. */
export async function refusal(call: Promise<unknown>): Promise<Error & { code?: number; details?: string }> {
  const outcome = await call.then(
    () => undefined,
    (err: unknown) => err as Error & { code?: number; details?: string },
  );
  if (!outcome) throw new Error('the call succeeded; expected a refusal');
  return outcome;
}
