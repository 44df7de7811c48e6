/** Child process for the concurrency test: creates, commits and removes snapshots. */
import { MetaStore } from '../../../src/services/metastore/metastore.js';

const [path, tag, count] = process.argv.slice(2) as [string, string, string];
const ms = new MetaStore(path);
ms.write((tx) => tx.createSnapshot('active', `${tag}-base-a`, ''));
ms.write((tx) => tx.commitActive(`${tag}-base-a`, `${tag}-base`, { size: 0, inodes: 0 }));
for (let i = 0; i < Number(count); i++) {
  ms.write((tx) => tx.createSnapshot('active', `${tag}-a-${i}`, `${tag}-base`, { i: String(i) }));
  ms.write((tx) => tx.createSnapshot('view', `${tag}-tmp-${i}`, `${tag}-base`));
  ms.write((tx) => tx.commitActive(`${tag}-a-${i}`, `${tag}-c-${i}`, { size: i, inodes: 1 }));
  ms.write((tx) => tx.remove(`${tag}-tmp-${i}`));
  ms.read((tx) => tx.list([`name==${tag}-c-${i}`]));
}
ms.close();
