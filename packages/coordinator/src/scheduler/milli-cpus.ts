/**
 * vCPU bookings are summed in whole milli-CPUs. Fractions such as 0.1 and 0.2
 * have no exact binary form, so adding and taking them away as floats drifts
 * (a host left with 3.619999999999966 of 8 vCPUs booked, or one that refuses
 * 0.1 more on top of 0.2 with 0.3 allocatable); whole numbers do not drift.
 * A demand counts to the nearest milli-CPU, as a Kubernetes CPU quantity does.
 */
export const MILLI_PER_CPU = 1000;

/** vCPUs as whole milli-CPUs (nearest). */
export function toMilliCpus(vcpus: number): number {
  return Math.round(vcpus * MILLI_PER_CPU);
}

/** Whole milli-CPUs as vCPUs: the double nearest the decimal, so 3620 prints as 3.62. */
export function fromMilliCpus(milli: number): number {
  return milli / MILLI_PER_CPU;
}

/** `a + sign × b` vCPUs, exact to the milli-CPU whatever has been added and taken away before. */
export function addCpus(a: number, b: number, sign: 1 | -1 = 1): number {
  return (toMilliCpus(a) + sign * toMilliCpus(b)) / MILLI_PER_CPU;
}

/** `vcpus` to the milli-CPU: (8 − 0.5) × 1.1 is 8.25, not 8.250000000000002. */
export function milliExact(vcpus: number): number {
  return toMilliCpus(vcpus) / MILLI_PER_CPU;
}
