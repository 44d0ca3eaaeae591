// Checkpoint page (#/jobs/<id>/checkpoints/<cid>): one checkpoint per operator (vertex) and
// per subtask: acknowledgement time, end-to-end duration, synchronous and asynchronous parts,
// alignment, persisted in-flight data, state size.

import { getJson, seg } from './api.js';
import { h, kvTable, link, replace, section, stateBadge, table } from './dom.js';
import { formatBytes, formatDuration, formatTime } from './format.js';

function subtaskTable(detail) {
  const rows = (detail.subtasks || []).map((s) => {
    const done = s['@class'] === 'completed';
    return h('tr', { 'data-testid': 'checkpoint-subtask-row', 'data-subtask': String(s.index) }, done ? [
      h('td', { class: 'num' }, String(s.index)),
      h('td', {}, stateBadge('COMPLETED')),
      h('td', { class: 'nowrap' }, formatTime(s.ack_timestamp)),
      h('td', { class: 'num', 'data-testid': 'checkpoint-subtask-e2e' }, formatDuration(s.end_to_end_duration)),
      h('td', { class: 'num' }, `${formatDuration(s.checkpoint.sync)} / ${formatDuration(s.checkpoint.async)}`),
      h('td', { class: 'num', title: 'first barrier to last; buffered bytes are not measured' },
        formatDuration(s.alignment.duration)),
      h('td', { class: 'num' }, formatBytes(s.alignment.persisted)),
      h('td', { class: 'num', 'data-testid': 'checkpoint-subtask-size' }, formatBytes(s.state_size)),
    ] : [
      h('td', { class: 'num' }, String(s.index)),
      h('td', { colspan: 7 }, stateBadge('PENDING_OR_FAILED')),
    ]);
  });
  return table(['Subtask', 'Status', 'Acknowledged', 'End to end', 'Sync / async', 'Alignment',
    'Persisted in-flight', 'State size'], rows, { 'data-testid': 'checkpoint-subtask-table', empty: 'No subtasks' });
}

export function mount(root, params, ctx) {
  const jobId = params.id;
  const cid = params.cid;
  const header = h('div', {}, 'Loading the checkpoint…');
  const operators = h('div');
  replace(root, [
    h('div', { class: 'card' }, [
      h('div', {}, link(`/jobs/${jobId}/checkpoints`, '← checkpoints', { 'data-testid': 'back-to-checkpoints' })),
      h('h1', { 'data-testid': 'checkpoint-title' }, `Checkpoint ${cid}`),
      header,
    ]),
    operators,
  ]);
  let names = null;
  let done = false;

  return {
    async refresh() {
      if (done) return;
      if (names === null) {
        const job = await getJson(`jobs/${seg(jobId)}`);
        if (!ctx.alive()) return;
        names = new Map((job.vertices || []).map((v) => [v.id, v.name]));
      }
      const cp = await getJson(`jobs/${seg(jobId)}/checkpoints/details/${seg(cid)}`);
      if (!ctx.alive()) return;
      replace(header, kvTable([
        ['Status', [stateBadge(cp.status), cp.is_savepoint ? h('span', { class: 'badge' }, 'savepoint') : null]],
        ['Triggered', formatTime(cp.trigger_timestamp)],
        ['Latest acknowledgement', formatTime(cp.latest_ack_timestamp)],
        ['End to end', formatDuration(cp.end_to_end_duration)],
        ['State size', formatBytes(cp.state_size)],
        ['Persisted in-flight data', formatBytes(cp.persisted_data)],
        ['Acknowledged', `${cp.num_acknowledged_subtasks}/${cp.num_subtasks}`],
        ['Path', h('span', { class: 'mono small wrap' }, cp.external_path || cp.failure_message || '-')],
      ], { 'data-testid': 'checkpoint-summary' }));
      const sections = [];
      for (const [vid, task] of Object.entries(cp.tasks || {})) {
        const detail = await getJson(`jobs/${seg(jobId)}/checkpoints/details/${seg(cid)}/subtasks/${seg(vid)}`);
        if (!ctx.alive()) return;
        const name = names.get(vid) || vid;
        sections.push(section(null, [
          h('h2', { class: 'vertex-title', title: name }, name),
          kvTable([
            ['Acknowledged', `${task.num_acknowledged_subtasks}/${task.num_subtasks}`],
            ['State size', formatBytes(task.state_size)],
            ['End to end', formatDuration(task.end_to_end_duration)],
            ['Persisted in-flight data', formatBytes(task.persisted_data)],
          ], { class: 'compact' }),
          subtaskTable(detail),
        ], { 'data-testid': 'checkpoint-operator', 'data-vertex-id': vid }));
      }
      replace(operators, sections);
      done = cp.status !== 'IN_PROGRESS';
    },
  };
}
