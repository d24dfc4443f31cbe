/**
 * Wraps a pure one-argument function so that calling it again with the same argument
 * returns the last result without recomputing: the request paths call for one URL
 * over and over, and parsing it each time is most of their cost.
 */
export function rememberLast<A, R>(fn: (arg: A) => R): (arg: A) => R {
  let last: { arg: A; result: R } | undefined;
  return (arg) => {
    if (last !== undefined && last.arg === arg) return last.result;
    const result = fn(arg);
    last = { arg, result };
    return result;
  };
}
