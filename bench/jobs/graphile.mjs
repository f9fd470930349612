// graphile-worker on the PostgreSQL Quire's bench uses, measured the same way:
//   node bench/jobs/graphile.mjs URL N
// prints one JSON line: enqueue rates (one job per call; 100 per call) and run rates of
// no-op jobs with 1 and 4 jobs at once, in jobs per second. Uses a schema of its own.
import { Logger, makeWorkerUtils, run } from "graphile-worker";

const [url, nArg] = process.argv.slice(2);
const n = Number(nArg ?? 5000);
const schema = `gw_bench_${process.pid}`;
const logger = new Logger(() => () => {});
const utils = await makeWorkerUtils({ connectionString: url, schema, logger });
await utils.migrate();

async function timed(f) {
  const t = performance.now();
  await f();
  return (performance.now() - t) / 1000;
}

const single = Math.max(100, Math.floor(n / 5));
const singleSecs = await timed(async () => {
  for (let i = 0; i < single; i++) await utils.addJob("enqueued", { i }, { queueName: undefined });
});
const batchSecs = await timed(async () => {
  for (let i = 0; i < n; i += 100) {
    const specs = [];
    for (let j = i; j < Math.min(n, i + 100); j++) specs.push({ identifier: "enqueued", payload: { j } });
    await utils.addJobs(specs);
  }
});

// The run figures use a fresh schema each, so that the jobs of the enqueue figures (which
// no task handles) are not in graphile-worker's way.
async function runRate(concurrency) {
  const task = "noop";
  const schema = `gw_bench_${process.pid}_run${concurrency}`;
  const utils = await makeWorkerUtils({ connectionString: url, schema, logger });
  await utils.migrate();
  for (let i = 0; i < n; i += 100) {
    const specs = [];
    for (let j = i; j < Math.min(n, i + 100); j++) specs.push({ identifier: task, payload: {} });
    await utils.addJobs(specs);
  }
  let done = 0;
  let finish;
  const all = new Promise((r) => (finish = r));
  const walBefore = await walPosition(utils);
  const t = performance.now();
  const runner = await run({
    connectionString: url,
    schema,
    concurrency,
    noHandleSignals: true,
    pollInterval: 100,
    logger,
    taskList: {
      [task]: async () => {
        if (++done === n) finish();
      },
    },
  });
  await all;
  const rate = n / ((performance.now() - t) / 1000);
  const walPerJob = (Number(await walPosition(utils)) - Number(walBefore)) / n;
  await runner.stop();
  await utils.withPgClient((c) => c.query(`DROP SCHEMA ${schema} CASCADE`));
  await utils.release();
  return { rate, walPerJob };
}

// The server's write-ahead log position in bytes.
async function walPosition(utils) {
  const r = await utils.withPgClient((c) => c.query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS at"));
  return BigInt(r.rows[0].at);
}

const run1 = await runRate(1);
const run4 = await runRate(4);
await utils.withPgClient((c) => c.query(`DROP SCHEMA ${schema} CASCADE`));
await utils.release();
console.log(
  JSON.stringify({
    enqueue_single_per_s: single / singleSecs,
    enqueue_batch_per_s: n / batchSecs,
    run1_per_s: run1.rate,
    run4_per_s: run4.rate,
    run4_wal_per_job: run4.walPerJob,
  }),
);
