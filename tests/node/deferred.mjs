// Shared by the MCP SDK client scripts in this folder.

/** A promise plus its resolve/reject, for events that arrive from callbacks. */
export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
