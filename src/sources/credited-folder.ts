import type { Observable } from 'rxjs';
import { takeCredits } from '../operators/take-credits.ts';
import type { FolderEvent } from './folder-events.ts';
import type { SliceCredits } from './slice-credits.ts';
import { type WatchFolderOptions, watchFolder } from './watch-folder.ts';

/**
 * The folder source in the credit protocol, as `run`, the demo and the benchmark use it: `watchFolder`
 * with each slice waiting (as its path) for one of the daemon's `credits`, at most `window` out.
 */
export function creditedFolder(
  root: string,
  options: WatchFolderOptions,
  credits: SliceCredits,
  window: number,
): Observable<FolderEvent> {
  return watchFolder(root, options).pipe(takeCredits(credits, window, (event) => event.type === 'slice'));
}
