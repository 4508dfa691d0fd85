import t from 'tap';
import { formatLogLine } from '../../src/log.ts';

t.test('a pino JSON line as a readable terminal line', async (t) => {
  const at = Date.UTC(2026, 10, 25, 9, 7, 3);
  t.equal(
    formatLogLine(
      JSON.stringify({
        level: 50,
        time: at,
        scanId: 'cell-7',
        slice: 12,
        msg: 'slice 12 of cell-7 skipped: x.tif: not a TIFF file',
      }),
    ),
    '09:07:03 ERROR [scan cell-7 slice 12] slice 12 of cell-7 skipped: x.tif: not a TIFF file',
  );
  t.equal(
    formatLogLine(
      JSON.stringify({ level: 30, time: at, msg: 'stopping', err: { message: 'received SIGTERM' } }),
    ),
    '09:07:03 INFO  stopping (received SIGTERM)',
    'an error the message does not already say is added',
  );
  t.equal(formatLogLine('not json\n'), 'not json', 'anything else passes through');
});
