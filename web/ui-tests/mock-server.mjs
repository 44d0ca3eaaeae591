#!/usr/bin/env node
// A mock of riffle's REST API (docs/rest-api.md) that also serves web/ui/ at "/", for UI
// development and for running ui.test.mjs without a cluster. No dependencies.
//
//   node mock-server.mjs [--port 8099] [--host 127.0.0.1] [--live]
//
// --live makes it behave like a busy cluster: the failing job keeps failing (a new
// "injected failure #k" every 1.5 s) and the .log files keep growing, to exercise the
// test's tolerance for data that changes between two fetches.
//
// Prints "mock listening on <url>" and "JOB_ID=<id>" (the job with 14 injected failures).

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const UI_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'ui');
const args = process.argv.slice(2);
const argValue = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const PORT = Number(argValue('--port', process.env.PORT || 8099));
const HOST = argValue('--host', '127.0.0.1');

const VERSION = '0.1.0-mock';
const T0 = Date.now();
const MIN = 60_000;

// ---------------------------------------------------------------- helpers

const hex = (n = 16) => randomBytes(n).toString('hex');
const idFrom = (seed) => {
  let out = '';
  let x = 0;
  for (const ch of seed) x = (x * 31 + ch.charCodeAt(0)) >>> 0;
  while (out.length < 32) {
    x = (x * 1103515245 + 12345) >>> 0;
    out += (x >>> 8).toString(16).padStart(6, '0');
  }
  return out.slice(0, 32);
};

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=UTF-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `Request body is not valid JSON: ${err.message}`);
  }
}

// ---------------------------------------------------------------- fixtures: cluster

const TASK_MANAGERS = ['taskexecutor-0', 'taskexecutor-1'].map((id, i) => ({
  id,
  path: `riffle://127.0.0.1:${6122 + i}/taskmanager_${i}`,
  dataPort: 6130 + i,
  slotsNumber: 4,
  totalResource: { cpuCores: 4.0, taskHeapMemory: 512, taskOffHeapMemory: 0, managedMemory: 512, networkMemory: 128, extendedResources: { gpu: 1 } },
  hardware: { cpuCores: 16, physicalMemory: 64 * 1024 ** 3, freeMemory: 2 * 1024 ** 3, managedMemory: 512 * 1024 ** 2 },
  memoryConfiguration: {
    frameworkHeap: 128 * 1024 ** 2, taskHeap: 512 * 1024 ** 2, frameworkOffHeap: 128 * 1024 ** 2, taskOffHeap: 0,
    networkMemory: 128 * 1024 ** 2, managedMemory: 512 * 1024 ** 2, jvmMetaspace: 0, jvmOverhead: 0,
    totalFlinkMemory: 1408 * 1024 ** 2, totalProcessMemory: 1408 * 1024 ** 2,
  },
}));

const JM_CONFIG = [
  ['jobmanager.rpc.address', 'localhost'], ['rest.port', String(PORT)], ['rest.bind-address', '127.0.0.1'],
  ['taskmanager.numberOfTaskSlots', '4'], ['parallelism.default', '2'], ['log.dir', '/var/log/riffle'],
  ['state.backend', 'embedded'], ['state.checkpoints.dir', 'file:///tmp/riffle/checkpoints'],
  ['state.savepoints.dir', 'file:///tmp/riffle/savepoints'], ['execution.checkpointing.interval', '5s'],
  ['rest.auth.token', '******'], ['restart-strategy', 'fixed-delay'], ['restart-strategy.fixed-delay.attempts', '100'],
  ['web.refresh-interval', '3000'], ['env.note', '<b>not bold</b> & <script>alert(1)</script>'],
].map(([key, value]) => ({ key, value }));

function logLines(prefix, count, start) {
  const lines = [];
  for (let i = 0; i < count; i++) {
    const t = new Date(start + i * 1000).toISOString();
    lines.push(`${t} INFO  ${prefix} - line ${i + 1}: heartbeat ok <tag> & "quotes" ü`);
  }
  return lines.join('\n') + '\n';
}

const BIG = Buffer.from(logLines('big.component', 20000, T0 - 60 * MIN)); // > 1 MiB: viewed by Range

function logDir(who) {
  return [
    { name: `${who}.log`, data: Buffer.from(logLines(`riffle.${who}`, 120, T0 - 30 * MIN)), mtime: T0 - MIN },
    { name: `${who}.log.1`, data: Buffer.from(logLines(`riffle.${who}.old`, 40, T0 - 90 * MIN)), mtime: T0 - 60 * MIN },
    { name: `${who}.out`, data: Buffer.alloc(0), mtime: T0 - 30 * MIN },
    { name: 'gc log (old) #1 & more.txt', data: Buffer.from('GC pause 12ms\nGC pause 8ms\n'), mtime: T0 - 120 * MIN },
    { name: `${who}-big.log`, data: BIG, mtime: T0 - 2 * MIN },
  ];
}

const LOGS = {
  jobmanager: logDir('jobmanager'),
  'taskexecutor-0': logDir('taskmanager-0'),
  'taskexecutor-1': logDir('taskmanager-1'),
};

// ---------------------------------------------------------------- fixtures: jobs

const jobs = new Map();

function makeVertex(id, name, parallelism, rate, inputs) {
  return { id, name, parallelism, rate, inputs };
}

function addJob({ jid, name, state, start, end, vertices, checkpointing, failures = 0 }) {
  const job = { jid, name, state, start, end, vertices, checkpointing, failures, timestamps: {} };
  job.timestamps.CREATED = start - 200;
  job.timestamps.RUNNING = start;
  if (end > 0) job.timestamps[state] = end;
  jobs.set(jid, job);
  return job;
}

function pipeline(prefix, names) {
  // names: [[name, parallelism, rate, [input indexes], ship]]
  const ids = names.map(([name]) => idFrom(prefix + name));
  return names.map(([name, p, rate, ins, ship], i) =>
    makeVertex(ids[i], name, p, rate, ins.map((k, n) => ({ num: n, id: ids[k], ship_strategy: ship || 'HASH', exchange: 'pipelined_bounded' }))));
}

const FAILING_JOB = addJob({
  jid: idFrom('failing-job'),
  name: 'Failing WordCount <injected>',
  state: 'RUNNING',
  start: T0 - 25 * MIN,
  end: -1,
  checkpointing: true,
  failures: 14,
  vertices: pipeline('failing', [
    ['Source: events', 2, 1200, []],
    ['Source: control stream', 1, 5, []],
    ['Flat Map: tokenize', 4, 1200, [0], 'REBALANCE'],
    ['Window(Tumbling 5s): count words', 4, 900, [2, 1], 'HASH'],
    ['Sink: print', 1, 300, [3], 'FORWARD'],
  ]),
});

addJob({
  jid: idFrom('finished-job'),
  name: 'Batch import',
  state: 'FINISHED',
  start: T0 - 120 * MIN,
  end: T0 - 100 * MIN,
  checkpointing: false,
  vertices: pipeline('finished', [['Source: files', 2, 500, []], ['Sink: table', 2, 500, [0], 'FORWARD']]),
});

addJob({
  jid: idFrom('cancelled-job'),
  name: 'Sessionize (cancelled)',
  state: 'CANCELED',
  start: T0 - 80 * MIN,
  end: T0 - 70 * MIN,
  checkpointing: true,
  vertices: pipeline('cancelled', [['Source: clicks', 1, 50, []], ['Sessionize', 2, 50, [0]], ['Sink: log', 1, 10, [1], 'FORWARD']]),
});

const PROGRAMS = [
  {
    name: 'wordcount',
    description: 'Counts words of generated sentences in tumbling windows.',
    args: [
      { name: '--events', default: '100000', help: 'number of events to generate (0 = unbounded)' },
      { name: '--window', default: '5s', help: 'window size' },
    ],
  },
  {
    name: 'sessionize',
    description: 'Groups click events into sessions <with a gap>.',
    args: [{ name: '--gap', default: '30s', help: 'session gap' }],
  },
  {
    name: 'failover-demo',
    description: "Counts a throttled stream per key with checkpoints while failures are injected ('injected failure #k')",
    args: [
      { name: '--failures', default: '5', help: 'failures to inject' },
      { name: '--interval-ms', default: '500', help: 'time between failures' },
      { name: '--seconds', default: '30', help: 'how long the input lasts' },
      { name: '--rate', default: '20', help: 'records per millisecond' },
    ],
  },
];

function terminal(state) {
  return ['FINISHED', 'CANCELED', 'FAILED'].includes(state);
}

function jobNow(job) {
  return job.end > 0 ? job.end : Date.now();
}

function vertexState(job) {
  if (job.state === 'FINISHED') return 'FINISHED';
  if (job.state === 'CANCELED') return 'CANCELED';
  if (job.state === 'CANCELLING') return 'CANCELING';
  if (job.state === 'FAILED') return 'FAILED';
  return 'RUNNING';
}

function bpLevel(i, now) {
  const phase = Math.floor(now / 6000 + i) % 3;
  return [['ok', 0.02], ['low', 0.25], ['high', 0.72]][phase];
}

function vertexDetails(job, v, i) {
  const now = jobNow(job);
  const secs = Math.max(0, (now - job.start) / 1000);
  const read = v.inputs.length ? Math.floor(secs * v.rate) : 0;
  const write = Math.floor(secs * v.rate * (v.name.startsWith('Sink') ? 0 : 1));
  const status = vertexState(job);
  const [level, ratio] = terminal(job.state) ? ['ok', 0] : bpLevel(i, now);
  return {
    id: v.id,
    name: v.name,
    parallelism: v.parallelism,
    maxParallelism: 128,
    status,
    'start-time': job.start,
    'end-time': job.end,
    duration: now - job.start,
    tasks: { CREATED: 0, SCHEDULED: 0, DEPLOYING: 0, RUNNING: status === 'RUNNING' ? v.parallelism : 0, FINISHED: status === 'FINISHED' ? v.parallelism : 0, CANCELING: status === 'CANCELING' ? v.parallelism : 0, CANCELED: status === 'CANCELED' ? v.parallelism : 0, FAILED: 0, RECONCILING: 0 },
    metrics: {
      'read-bytes': read * 48, 'read-bytes-complete': true,
      'write-bytes': write * 48, 'write-bytes-complete': true,
      'read-records': read, 'read-records-complete': true,
      'write-records': write, 'write-records-complete': true,
      'accumulated-backpressured-time': Math.floor(secs * ratio * 1000),
    },
    'backpressure-level': level,
    'backpressured-ratio': ratio,
  };
}

function statusCounts(job) {
  const counts = { CREATED: 0, SCHEDULED: 0, DEPLOYING: 0, RUNNING: 0, FINISHED: 0, CANCELING: 0, CANCELED: 0, FAILED: 0, RECONCILING: 0 };
  counts[vertexState(job)] = job.vertices.length;
  return counts;
}

function plan(job) {
  return {
    jid: job.jid,
    name: job.name,
    nodes: job.vertices.map((v) => ({
      id: v.id,
      parallelism: v.parallelism,
      operator: '',
      operator_strategy: '',
      description: v.name,
      inputs: v.inputs,
      optimizer_properties: {},
    })),
  };
}

function jobOverview(job) {
  const now = jobNow(job);
  const lower = Object.fromEntries(Object.entries(statusCounts(job)).map(([k, n]) => [k.toLowerCase(), n]));
  return {
    jid: job.jid, name: job.name, state: job.state, 'start-time': job.start, 'end-time': job.end,
    duration: now - job.start, 'last-modification': job.end > 0 ? job.end : job.start,
    tasks: { total: job.vertices.length, ...lower }, 'pending-operators': 0,
  };
}

function jobDetails(job) {
  return {
    jid: job.jid, name: job.name, isStoppable: false, state: job.state, 'start-time': job.start,
    'end-time': job.end, duration: jobNow(job) - job.start, now: Date.now(), timestamps: job.timestamps,
    vertices: job.vertices.map((v, i) => vertexDetails(job, v, i)),
    'status-counts': statusCounts(job), plan: plan(job),
  };
}

// exception history: failure k (1-based) happened at start + k * 90 s
function failureEntry(job, k) {
  const v = job.vertices[k % job.vertices.length];
  const subtask = k % v.parallelism;
  const tm = TASK_MANAGERS[k % 2].id;
  const entry = {
    exceptionName: 'riffle::InjectedFailure',
    stacktrace: `injected failure #${k}\n    at ${v.name} (${subtask + 1}/${v.parallelism})\n    at riffle_actors::task::run <generic>\n    caused by: chaos test`,
    timestamp: job.start + k * 90_000,
    taskName: `${v.name} (${subtask + 1}/${v.parallelism})`,
    location: `${tm} (127.0.0.1:${6130 + (k % 2)})`,
    isRootCause: true,
    attempt: k,
    concurrentExceptions: [],
  };
  if (k % 3 === 0) {
    entry.concurrentExceptions.push({
      exceptionName: 'riffle::TaskCancelled',
      stacktrace: `cancelled after injected failure #${k}`,
      timestamp: entry.timestamp + 5,
      taskName: `Sink: print (1/1)`,
      location: `${tm} (127.0.0.1:6130)`,
      isRootCause: false,
      attempt: k,
    });
  }
  if (k === 7) {
    delete entry.taskName; // a global failure: no task, no location
    delete entry.location;
    entry.exceptionName = 'riffle::GlobalFailure';
  }
  return entry;
}

function exceptions(job, query) {
  const all = [];
  for (let k = job.failures; k >= 1; k--) all.push(failureEntry(job, k));
  const newest = all[0];
  const legacy = {
    'root-exception': newest ? `${newest.exceptionName}: ${newest.stacktrace}` : null,
    timestamp: newest ? newest.timestamp : null,
  };
  if (query.has('page') || query.has('size')) {
    const page = intParam(query, 'page', 0, 0, 1e9);
    const size = intParam(query, 'size', 20, 1, 100);
    const entries = all.slice(page * size, page * size + size);
    return {
      ...legacy,
      'all-exceptions': entries.map(toLegacy),
      truncated: false,
      exceptionHistory: { entries, truncated: false },
      page, size, total: all.length,
    };
  }
  const max = intParam(query, 'maxExceptions', 20, 0, 1e9);
  return {
    ...legacy,
    'all-exceptions': all.slice(0, max).map(toLegacy),
    truncated: all.length > max,
    exceptionHistory: { entries: all.slice(0, max), truncated: all.length > max },
  };
}

function toLegacy(e) {
  return { exception: `${e.exceptionName}: ${e.stacktrace}`, task: e.taskName ?? null, location: e.location ?? null, timestamp: e.timestamp };
}

function intParam(query, name, fallback, min, max) {
  if (!query.has(name)) return fallback;
  const raw = query.get(name);
  if (!/^\d+$/.test(raw)) throw new HttpError(400, `Query parameter ${name} must be an integer, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new HttpError(400, `Query parameter ${name} must be within ${min}..=${max}`);
  return n;
}

// checkpoints: one every 5 s since the job started (ids from 1), the last 10 in the history
function checkpoint(job, id) {
  const trigger = job.start + id * 5000;
  const failed = id % 7 === 0;
  const inProgress = !terminal(job.state) && trigger + 1500 > Date.now();
  const duration = 200 + ((id * 137) % 900);
  const base = {
    id, is_savepoint: id % 11 === 0, trigger_timestamp: trigger,
    latest_ack_timestamp: trigger + duration, state_size: 4096 + ((id * 7919) % 50000),
    end_to_end_duration: duration, alignment_buffered: 0, processed_data: 0, persisted_data: 0,
    num_subtasks: 12, num_acknowledged_subtasks: 12, tasks: {},
  };
  if (inProgress) {
    return { '@class': 'in_progress', ...base, status: 'IN_PROGRESS', num_acknowledged_subtasks: 5, end_to_end_duration: Date.now() - trigger, latest_ack_timestamp: trigger + 100 };
  }
  if (failed) {
    return { '@class': 'failed', ...base, status: 'FAILED', num_acknowledged_subtasks: 9, failure_timestamp: trigger + duration, failure_message: `Checkpoint ${id} expired before completing <timeout>` };
  }
  return { '@class': 'completed', ...base, status: 'COMPLETED', external_path: `file:///tmp/riffle/checkpoints/${job.jid}/chk-${id}`, discarded: false };
}

function checkpointIds(job) {
  const last = Math.floor((jobNow(job) - job.start) / 5000);
  const ids = [];
  for (let id = last; id >= 1 && ids.length < 10; id--) ids.push(id);
  return { ids, last };
}

function checkpoints(job) {
  const { ids, last } = checkpointIds(job);
  const history = ids.map((id) => checkpoint(job, id));
  const stat = (values) => (values.length
    ? { min: Math.min(...values), max: Math.max(...values), avg: Math.round(values.reduce((a, b) => a + b, 0) / values.length) }
    : { min: 0, max: 0, avg: 0 });
  const completed = history.filter((c) => c.status === 'COMPLETED');
  const failedCount = Math.floor(last / 7);
  return {
    counts: { restored: job.failures ? 1 : 0, total: last, in_progress: history.filter((c) => c.status === 'IN_PROGRESS').length, completed: last - failedCount, failed: failedCount },
    summary: {
      state_size: stat(completed.map((c) => c.state_size)),
      end_to_end_duration: stat(completed.map((c) => c.end_to_end_duration)),
      alignment_buffered: stat([0]),
    },
    latest: {
      completed: completed.find((c) => !c.is_savepoint) || null,
      savepoint: triggeredSavepoint(job) || completed.find((c) => c.is_savepoint) || null,
      failed: history.find((c) => c.status === 'FAILED') || null,
      restored: job.failures ? { id: completed.length ? completed[completed.length - 1].id : 1, restore_timestamp: job.start + job.failures * 90_000 + 500, is_savepoint: false, external_path: `file:///tmp/riffle/checkpoints/${job.jid}/chk-1` } : null,
    },
    history,
  };
}

const savepoints = new Map(); // request id -> {job, dir, at, id}
const SAVEPOINT_MS = 1500; // a triggered savepoint completes after this long

/** The operation of a triggered savepoint: null while in progress, else {location} or {failure}. */
function savepointOutcome(requestId, sp) {
  if (Date.now() - sp.at < SAVEPOINT_MS) return null;
  if (sp.dir && sp.dir.includes('fail')) return { failure: `cannot write to ${sp.dir}: permission denied` };
  const dir = sp.dir || 'file:///tmp/riffle/savepoints';
  return { location: `${dir}/savepoint-${sp.job.slice(0, 6)}-${requestId.slice(0, 12)}` };
}

/** The newest completed savepoint triggered on this job through the API, as a checkpoint entry. */
function triggeredSavepoint(job) {
  let newest = null;
  for (const [requestId, sp] of savepoints) {
    if (sp.job !== job.jid) continue;
    const outcome = savepointOutcome(requestId, sp);
    if (!outcome || !outcome.location || (newest && newest.trigger_timestamp > sp.at)) continue;
    newest = {
      '@class': 'completed', id: sp.id, status: 'COMPLETED', is_savepoint: true, trigger_timestamp: sp.at,
      latest_ack_timestamp: sp.at + SAVEPOINT_MS, state_size: 8192, end_to_end_duration: SAVEPOINT_MS,
      alignment_buffered: 0, processed_data: 0, persisted_data: 0, num_subtasks: 12, num_acknowledged_subtasks: 12,
      tasks: {}, external_path: outcome.location.replace(/^file:\/\//, ''), discarded: false,
    };
  }
  return newest;
}

/** The target directory of a savepoint request, checked as riffle does (absolute, or file://). */
function savepointTarget(dir) {
  if (dir === undefined || dir === null || String(dir).trim() === '') return null;
  const path = String(dir).replace(/^file:\/\//, '');
  if (!path.startsWith('/')) throw new HttpError(400, `the target directory must be an absolute path, got '${path}'`);
  return String(dir);
}

let savepointIds = 1000; // ids of triggered savepoints, apart from the periodic checkpoints'

function threadDump(scope) {
  const actors = scope === 'jobmanager'
    ? [
      { name: 'Dispatcher', mailbox: 0, activity: 'idle', since: Date.now() - 4000 },
      { name: 'ResourceManager', mailbox: 1, activity: 'handling SlotReport', since: Date.now() - 20 },
      { name: `JobMaster ${FAILING_JOB.jid}`, mailbox: 3, activity: 'handling Heartbeat', since: Date.now() - 5 },
    ]
    : [
      { name: `TaskExecutor ${scope}`, mailbox: 0, activity: 'idle', since: Date.now() - 1000 },
      { name: 'Task Map (1/4) <actor>', mailbox: 42, activity: 'processing records', since: Date.now() - 3 },
    ];
  const subtasks = scope === 'jobmanager' ? [] : FAILING_JOB.vertices.slice(0, 3).map((v, i) => ({
    job: FAILING_JOB.jid, vertex: v.name, subtask: i, state: 'RUNNING', backpressured: i === 1,
  }));
  return {
    threadInfos: [
      { threadName: 'main', stringifiedThreadInfo: '"main" Id=1 WAITING\n\tat riffle::main\n' },
      { threadName: 'actix-rt|system:0|arbiter:0', stringifiedThreadInfo: '"actix-rt|system:0|arbiter:0" RUNNABLE\n\tat tokio::runtime::park\n' },
      { threadName: `${scope}-io-1`, stringifiedThreadInfo: `"${scope}-io-1" RUNNABLE <io>\n` },
    ],
    actors,
    subtasks,
  };
}

function getVertex(job, vid) {
  const v = job.vertices.find((x) => x.id === vid);
  if (!v) throw new HttpError(404, `job ${job.jid} has no vertex ${vid}`);
  return v;
}

function checkpointTask(cp, v) {
  return {
    id: v.id, status: cp.status, latest_ack_timestamp: cp.latest_ack_timestamp, state_size: 1000 * v.parallelism,
    checkpointed_size: 1000 * v.parallelism, end_to_end_duration: cp.end_to_end_duration, alignment_buffered: 0,
    processed_data: 0, persisted_data: 0, num_subtasks: v.parallelism, num_acknowledged_subtasks: v.parallelism,
  };
}

/** Flink's metric query: ids without get, [{id, value}] with it. */
function metricAnswer(all, query) {
  const get = query.get('get');
  if (get === null) return all.map(([id]) => ({ id }));
  return get.split(',').map((g) => all.find(([id]) => id === g)).filter(Boolean).map(([id, value]) => ({ id, value }));
}

// ---------------------------------------------------------------- routes

function getJob(id) {
  if (!/^[0-9a-f]{32}$/.test(id)) throw new HttpError(400, `Invalid job id "${id}": expected 32 lowercase hex digits`);
  const job = jobs.get(id);
  if (!job) throw new HttpError(404, `Job ${id} not found`);
  return job;
}

function getTm(id) {
  const tm = TASK_MANAGERS.find((t) => t.id === id);
  if (!tm) throw new HttpError(404, `TaskManager ${id} not found`);
  return tm;
}

function tmInfo(tm) {
  const used = [...jobs.values()].filter((j) => !terminal(j.state)).length;
  return { ...tm, timeSinceLastHeartbeat: Date.now() - 1500, freeSlots: Math.max(0, tm.slotsNumber - used * 2), freeResource: { ...tm.totalResource, cpuCores: 2.0 } };
}

function serveLog(req, res, files, name, query) {
  const file = files.find((f) => f.name === name);
  if (!file) throw new HttpError(404, `Log file ${name} not found`);
  const headers = { 'Content-Type': 'text/plain; charset=UTF-8', 'Accept-Ranges': 'bytes' };
  if (query.get('download') === 'true') {
    headers['Content-Disposition'] = `attachment; filename*=UTF-8''${encodeURIComponent(name)}`;
  }
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range || '');
  if (range) {
    const first = Number(range[1]);
    const last = Math.min(file.data.length - 1, range[2] === '' ? file.data.length - 1 : Number(range[2]));
    if (first >= file.data.length || first > last) {
      res.writeHead(416, { 'Content-Range': `bytes */${file.data.length}` });
      return res.end();
    }
    const part = file.data.subarray(first, last + 1);
    res.writeHead(206, { ...headers, 'Content-Range': `bytes ${first}-${last}/${file.data.length}`, 'Content-Length': part.length });
    return res.end(part);
  }
  res.writeHead(200, { ...headers, 'Content-Length': file.data.length });
  return res.end(file.data);
}

function logList(files) {
  return { logs: files.map((f) => ({ name: f.name, size: f.data.length, mtime: f.mtime })) };
}

function overview() {
  const all = [...jobs.values()];
  const free = TASK_MANAGERS.map(tmInfo).reduce((n, t) => n + t.freeSlots, 0);
  return {
    taskmanagers: TASK_MANAGERS.length, 'slots-total': TASK_MANAGERS.reduce((n, t) => n + t.slotsNumber, 0),
    'slots-available': free, 'jobs-running': all.filter((j) => !terminal(j.state)).length,
    'jobs-finished': all.filter((j) => j.state === 'FINISHED').length,
    'jobs-cancelled': all.filter((j) => j.state === 'CANCELED').length,
    'jobs-failed': all.filter((j) => j.state === 'FAILED').length,
    'flink-version': '1.11.0', 'flink-commit': `riffle ${VERSION}`, 'riffle-version': VERSION,
  };
}

async function api(req, res, path, query) {
  const m = (re) => re.exec(path);
  const method = req.method;
  let r;

  if (method === 'GET') {
    if (path === '/config') {
      return sendJson(res, 200, { 'refresh-interval': 3000, 'timezone-name': 'UTC', 'timezone-offset': 0, 'flink-version': '1.11.0', 'flink-revision': `riffle ${VERSION}`, 'riffle-version': VERSION, features: { 'web-submit': true } });
    }
    if (path === '/overview') return sendJson(res, 200, overview());
    if (path === '/jobmanager/config') return sendJson(res, 200, JM_CONFIG);
    if (path === '/jobmanager/logs') return sendJson(res, 200, logList(LOGS.jobmanager));
    if ((r = m(/^\/jobmanager\/logs\/([^/]+)$/))) return serveLog(req, res, LOGS.jobmanager, decodeURIComponent(r[1]), query);
    if (path === '/jobmanager/thread-dump') return sendJson(res, 200, threadDump('jobmanager'));
    if (path === '/metrics') {
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
      return res.end(`# TYPE riffle_jobs_running gauge\nriffle_jobs_running ${overview()['jobs-running']}\n`);
    }
    if (path === '/taskmanagers') return sendJson(res, 200, { taskmanagers: TASK_MANAGERS.map(tmInfo) });
    if ((r = m(/^\/taskmanagers\/([^/]+)$/))) {
      const tm = getTm(decodeURIComponent(r[1]));
      return sendJson(res, 200, {
        ...tmInfo(tm),
        metrics: {
          heapUsed: 210e6, heapCommitted: 512e6, heapMax: 1024e6, nonHeapUsed: 40e6, nonHeapCommitted: 64e6, nonHeapMax: -1,
          directCount: 12, directUsed: 8e6, directMax: 128e6, mappedCount: 0, mappedUsed: 0, mappedMax: 0,
          memorySegmentsAvailable: 3000, memorySegmentsTotal: 4096, nettyShuffleMemorySegmentsAvailable: 3000,
          nettyShuffleMemorySegmentsUsed: 1096, nettyShuffleMemorySegmentsTotal: 4096,
          nettyShuffleMemoryAvailable: 3000 * 32768, nettyShuffleMemoryUsed: 1096 * 32768, nettyShuffleMemoryTotal: 4096 * 32768,
          residentMemory: 300e6,
        },
        garbageCollectors: [],
      });
    }
    if ((r = m(/^\/taskmanagers\/([^/]+)\/logs$/))) {
      const tm = getTm(decodeURIComponent(r[1]));
      return sendJson(res, 200, logList(LOGS[tm.id]));
    }
    if ((r = m(/^\/taskmanagers\/([^/]+)\/logs\/([^/]+)$/))) {
      const tm = getTm(decodeURIComponent(r[1]));
      return serveLog(req, res, LOGS[tm.id], decodeURIComponent(r[2]), query);
    }
    if ((r = m(/^\/taskmanagers\/([^/]+)\/thread-dump$/))) {
      const tm = getTm(decodeURIComponent(r[1]));
      return sendJson(res, 200, threadDump(tm.id));
    }
    if (path === '/jobs') return sendJson(res, 200, { jobs: [...jobs.values()].map((j) => ({ id: j.jid, status: j.state })) });
    if (path === '/jobs/overview') {
      const list = [...jobs.values()].sort((a, b) => b.start - a.start).map(jobOverview);
      return sendJson(res, 200, { jobs: list });
    }
    if ((r = m(/^\/jobs\/([^/]+)$/))) return sendJson(res, 200, jobDetails(getJob(r[1])));
    if ((r = m(/^\/jobs\/([^/]+)\/plan$/))) return sendJson(res, 200, { plan: plan(getJob(r[1])) });
    if ((r = m(/^\/jobs\/([^/]+)\/exceptions$/))) return sendJson(res, 200, exceptions(getJob(r[1]), query));
    if ((r = m(/^\/jobs\/([^/]+)\/vertices\/([^/]+)\/backpressure$/))) {
      const job = getJob(r[1]);
      const i = job.vertices.findIndex((v) => v.id === r[2]);
      if (i < 0) throw new HttpError(404, `Vertex ${r[2]} not found`);
      const [level, ratio] = bpLevel(i, Date.now());
      return sendJson(res, 200, {
        status: 'ok', 'backpressure-level': level, 'end-timestamp': Date.now(),
        subtasks: Array.from({ length: job.vertices[i].parallelism }, (_, s) => ({ subtask: s, 'backpressure-level': level, ratio })),
      });
    }
    if ((r = m(/^\/jobs\/([^/]+)\/checkpoints$/))) {
      const job = getJob(r[1]);
      if (!job.checkpointing) throw new HttpError(404, 'Checkpointing is not enabled for this job');
      return sendJson(res, 200, checkpoints(job));
    }
    if ((r = m(/^\/jobs\/([^/]+)\/checkpoints\/config$/))) {
      const job = getJob(r[1]);
      if (!job.checkpointing) throw new HttpError(404, 'Checkpointing is not enabled for this job');
      return sendJson(res, 200, {
        mode: 'exactly_once', interval: 5000, timeout: 60000, min_pause: 0, max_concurrent: 1,
        externalization: { enabled: true, delete_on_cancellation: false }, state_backend: 'embedded', unaligned_checkpoints: false,
      });
    }
    if ((r = m(/^\/jobs\/([^/]+)\/checkpoints\/details\/([^/]+)$/))) {
      const job = getJob(r[1]);
      if (!/^\d+$/.test(r[2])) throw new HttpError(400, `Invalid checkpoint id "${r[2]}"`);
      const id = Number(r[2]);
      if (!checkpointIds(job).ids.includes(id)) throw new HttpError(404, `Checkpoint ${id} not found`);
      const cp = checkpoint(job, id);
      cp.tasks = Object.fromEntries(job.vertices.map((v) => [v.id, checkpointTask(cp, v)]));
      return sendJson(res, 200, cp);
    }
    if ((r = m(/^\/jobs\/([^/]+)\/checkpoints\/details\/(\d+)\/subtasks\/([^/]+)$/))) {
      const job = getJob(r[1]);
      const id = Number(r[2]);
      if (!checkpointIds(job).ids.includes(id)) throw new HttpError(404, `Checkpoint ${id} not found`);
      const v = getVertex(job, r[3]);
      const cp = checkpoint(job, id);
      const subtasks = Array.from({ length: v.parallelism }, (_, i) => ({
        '@class': 'completed', index: i, status: 'completed', ack_timestamp: cp.latest_ack_timestamp - i,
        end_to_end_duration: cp.end_to_end_duration - i, state_size: 1000 + i, checkpointed_size: 1000 + i,
        checkpoint: { sync: 1, async: 20 + i }, alignment: { buffered: 0, processed: 0, persisted: 0, duration: 3 },
        start_delay: 0, unaligned_checkpoint: false, aborted: false,
      }));
      const stat = (x) => ({ min: x, max: x, avg: x });
      return sendJson(res, 200, { ...checkpointTask(cp, v), summary: {
        state_size: stat(1000), checkpointed_size: stat(1000), end_to_end_duration: stat(cp.end_to_end_duration),
        checkpoint_duration: { sync: stat(1), async: stat(20) },
        alignment: { buffered: stat(0), processed: stat(0), persisted: stat(0), duration: stat(3) }, start_delay: stat(0),
      }, subtasks });
    }
    if ((r = m(/^\/jobs\/([^/]+)\/vertices\/([^/]+)$/))) {
      const job = getJob(r[1]);
      const v = getVertex(job, r[2]);
      const d = vertexDetails(job, v, job.vertices.indexOf(v));
      const subtasks = Array.from({ length: v.parallelism }, (_, i) => {
        const tm = TASK_MANAGERS[i % TASK_MANAGERS.length];
        const share = (x) => Math.floor(x / v.parallelism);
        return {
          subtask: i, status: d.status, attempt: job.failures, host: '127.0.0.1', endpoint: `127.0.0.1:${6130 + (i % 2)}`,
          'taskmanager-id': tm.id, 'start-time': d['start-time'], 'end-time': d['end-time'], duration: d.duration,
          metrics: { ...d.metrics, 'read-records': share(d.metrics['read-records']), 'write-records': share(d.metrics['write-records']),
            'accumulated-idle-time': 0, 'accumulated-busy-time': d.duration },
          'backpressure-level': d['backpressure-level'], 'backpressured-ratio': d['backpressured-ratio'],
          'idle-ratio': 0.1, 'busy-ratio': 0.9 - d['backpressured-ratio'], 'current-input-watermark': Date.now() - 5000,
        };
      });
      return sendJson(res, 200, { id: v.id, name: v.name, parallelism: v.parallelism, maxParallelism: 128, now: Date.now(), subtasks });
    }
    if ((r = m(/^\/jobs\/([^/]+)\/vertices\/([^/]+)\/watermarks$/))) {
      const v = getVertex(getJob(r[1]), r[2]);
      return sendJson(res, 200, Array.from({ length: v.parallelism }, (_, i) => ({ id: `${i}.currentInputWatermark`, value: String(Date.now() - 5000 - i) })));
    }
    if ((r = m(/^\/jobs\/([^/]+)\/vertices\/([^/]+)\/metrics$/))) {
      const v = getVertex(getJob(r[1]), r[2]);
      const all = [];
      for (let i = 0; i < v.parallelism; i++) {
        all.push([`${i}.numRecordsIn`, String(Math.floor((Date.now() - T0) / 10) + i)], [`${i}.currentInputWatermark`, String(Date.now() - 5000)]);
      }
      return sendJson(res, 200, metricAnswer(all, query));
    }
    if (path === '/jobmanager/metrics') {
      return sendJson(res, 200, metricAnswer([['Status.Process.CPU.Time', '12000'], ['Status.Process.CPU.Load', '0.25'],
        ['Status.Process.Threads.Count', '24'], ['Status.Process.Memory.Resident', String(300e6)], ['taskSlotsTotal', '4']], query));
    }
    if ((r = m(/^\/taskmanagers\/([^/]+)\/metrics$/))) {
      getTm(decodeURIComponent(r[1]));
      return sendJson(res, 200, metricAnswer([['Status.Process.Memory.Resident', String(300e6)], ['Status.Slots.Total', '2'],
        ['Slot.0.CPU.Time', '4000'], ['Slot.1.CPU.Time', '3500']], query));
    }
    if ((r = m(/^\/jobs\/([^/]+)\/savepoints\/([^/]+)$/))) {
      getJob(r[1]);
      const sp = savepoints.get(r[2]);
      if (!sp || sp.job !== r[1]) throw new HttpError(404, `Savepoint request ${r[2]} not found`);
      const outcome = savepointOutcome(r[2], sp);
      if (!outcome) return sendJson(res, 200, { status: { id: 'IN_PROGRESS' } });
      if (outcome.failure) {
        return sendJson(res, 200, { status: { id: 'COMPLETED' }, operation: { 'failure-cause': { class: 'riffle::SavepointError', 'stack-trace': outcome.failure, 'serialized-throwable': '' } } });
      }
      return sendJson(res, 200, { status: { id: 'COMPLETED' }, operation: { location: outcome.location } });
    }
    if (path === '/programs') return sendJson(res, 200, { programs: PROGRAMS });
  }

  if (method === 'PATCH' && (r = m(/^\/jobs\/([^/]+)$/))) {
    const job = getJob(r[1]);
    if ((query.get('mode') || 'cancel') !== 'cancel') throw new HttpError(400, `Unsupported mode ${query.get('mode')}`);
    await readBody(req);
    if (!terminal(job.state)) {
      job.state = 'CANCELLING';
      job.timestamps.CANCELLING = Date.now();
      setTimeout(() => {
        job.state = 'CANCELED';
        job.end = Date.now();
        job.timestamps.CANCELED = job.end;
      }, 1000);
    }
    return sendJson(res, 202, {});
  }
  if (method === 'POST' && (r = m(/^\/jobs\/([^/]+)\/savepoints$/))) {
    const job = getJob(r[1]);
    const body = await readBody(req);
    const dir = savepointTarget(body['target-directory']);
    if (terminal(job.state)) throw new HttpError(409, `Job ${job.jid} is ${job.state}: no savepoint possible`);
    const id = hex();
    savepoints.set(id, { job: job.jid, dir, at: Date.now(), id: ++savepointIds });
    return sendJson(res, 202, { 'request-id': id });
  }
  if (method === 'POST' && (r = m(/^\/jobs\/([^/]+)\/stop$/))) {
    const job = getJob(r[1]);
    const body = await readBody(req);
    const dir = savepointTarget(body.targetDirectory);
    const id = hex();
    savepoints.set(id, { job: job.jid, dir, at: Date.now(), id: ++savepointIds });
    return sendJson(res, 202, { 'request-id': id });
  }
  if (method === 'POST' && (r = m(/^\/programs\/([^/]+)\/run$/))) {
    const name = decodeURIComponent(r[1]);
    const program = PROGRAMS.find((p) => p.name === name);
    if (!program) throw new HttpError(404, `Program ${name} not found`);
    const body = await readBody(req);
    if (body.programArgsList !== undefined && !(Array.isArray(body.programArgsList) && body.programArgsList.every((a) => typeof a === 'string'))) {
      throw new HttpError(400, 'programArgsList must be a list of strings');
    }
    if (body.parallelism !== undefined && !(Number.isInteger(body.parallelism) && body.parallelism > 0)) {
      throw new HttpError(400, 'parallelism must be a positive integer');
    }
    if (body.jobId !== undefined && !/^[0-9a-f]{32}$/.test(body.jobId)) throw new HttpError(400, 'jobId must be 32 lowercase hex digits');
    const jid = body.jobId || hex();
    if (!jobs.has(jid)) {
      const p = body.parallelism || 2;
      addJob({
        jid, name: `${name} ${(body.programArgsList || []).join(' ')}`.trim(), state: 'RUNNING', start: Date.now(), end: -1,
        checkpointing: true,
        vertices: pipeline(jid, [['Source: generator', p, 800, []], ['Flat Map: split', p, 800, [0], 'FORWARD'], ['Keyed Aggregation: count', p, 600, [1], 'HASH'], ['Sink: stdout', 1, 100, [2], 'REBALANCE']]),
      });
    }
    return sendJson(res, 200, { jobid: jid });
  }

  throw new HttpError(method === 'GET' ? 404 : 405, `${method === 'GET' ? 'Not found' : 'Method not allowed'}: ${method} ${path}`);
}

// ---------------------------------------------------------------- static files

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.json': 'application/json',
};

async function serveStatic(res, path) {
  const rel = path === '/' ? 'index.html' : decodeURIComponent(path.slice(1));
  const file = normalize(join(UI_DIR, rel));
  if (!file.startsWith(UI_DIR + sep)) return false;
  try {
    const data = await readFile(file);
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream', 'Cache-Control': 'no-cache' });
    res.end(data);
    return true;
  } catch (_) {
    return false;
  }
}

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://mock');
    let path = url.pathname.replace(/\/+$/, '') || '/';
    if (path === '/v1' || path.startsWith('/v1/')) path = path.slice(3) || '/';
    if (req.method === 'GET' && (path === '/' || /\.(html|js|css|svg|png|ico)$/.test(path))) {
      if (await serveStatic(res, path)) return;
    }
    await api(req, res, path, url.searchParams);
  } catch (err) {
    const status = err instanceof HttpError ? err.status : 500;
    if (status === 500) console.error(err);
    if (!res.headersSent) sendJson(res, status, { errors: [status === 500 ? 'Internal server error.' : err.message] });
  }
});

if (args.includes('--live')) {
  setInterval(() => {
    if (!terminal(FAILING_JOB.state)) FAILING_JOB.failures += 1;
  }, 1500).unref();
  let line = 0;
  setInterval(() => {
    line += 1;
    for (const files of Object.values(LOGS)) {
      const log = files[0];
      log.data = Buffer.concat([log.data, Buffer.from(`${new Date().toISOString()} INFO  live line ${line}\n`)]);
      log.mtime = Date.now();
    }
  }, 300).unref();
}

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  console.log(`mock listening on http://${HOST}:${port}/`);
  console.log(`JOB_ID=${FAILING_JOB.jid}`);
});
