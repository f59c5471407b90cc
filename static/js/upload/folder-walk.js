/*
 * The files inside a dropped folder. A drop hands over FileSystemEntry objects
 * (webkitGetAsEntry); folders are read to the end, and in name order, so that
 * a batch is sent in the order a file manager shows it.
 */

/** The entries of a drop. They must be taken during the drop event: the
 * browser empties the list once the event is over. */
export function droppedEntries(dataTransfer) {
  return Array.from(dataTransfer.items || [])
    .map((item) => (item.kind === 'file' && item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
}

/** Every file under a dropped entry (folders read to the end, in order). */
export async function filesOf(entry) {
  if (entry.isFile) {
    return new Promise((resolve) => entry.file((file) => resolve([file]), () => resolve([])));
  }
  const reader = entry.createReader();
  const children = [];
  for (;;) {
    // readEntries answers in pieces (100 at a time in Chromium) until empty.
    const part = await new Promise((resolve) => reader.readEntries(resolve, () => resolve([])));
    if (!part.length) break;
    children.push(...part);
  }
  children.sort((a, b) => a.name.localeCompare(b.name));
  const lists = await Promise.all(children.map(filesOf));
  return lists.flat();
}
