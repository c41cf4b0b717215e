import { chmod, mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { isAlive } from './pid.ts';

/**
 * An embedded database must have one process at a time. The lock file holds
 * the owner's pid; a stale one (its process is gone) is taken over.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  // The data dir (the database, the site's secret) is the owner's alone.
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  const file = path.join(dataDir, 'scaleout.pid');
  for (let tries = 0; tries < 2; tries++) {
    try {
      const handle = await open(file, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (pid && pid !== process.pid && isAlive(pid)) {
        throw new Error(`the data dir ${dataDir} is in use by process ${pid}`);
      }
      await rm(file, { force: true });
    }
  }
  throw new Error(`could not lock the data dir ${dataDir}`);
}
