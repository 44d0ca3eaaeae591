// Submit page (#/submit): riffle's built-in programs (GET programs), one form each, run with
// POST programs/<name>/run, then go to the new job.

import { getJson, sendJson, seg } from './api.js';
import { h, replace, section, table } from './dom.js';

/** A random 32-hex job id, so that a repeated request cannot start a second job. */
function newJobId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Non-empty lines of a textarea. */
function lines(text) {
  return text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '');
}

/** "key=value" lines ("#" starts a comment line) -> object; throws on a line without "=". */
export function parseConfig(text) {
  const config = {};
  for (const line of lines(text)) {
    if (line.trim().startsWith('#')) continue;
    const at = line.indexOf('=');
    if (at <= 0) throw new Error(`Configuration line "${line}" is not key=value`);
    config[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return config;
}

function field(label, input, hint) {
  return h('label', { class: 'field' }, [h('span', { class: 'field-label' }, label), input,
    hint ? h('span', { class: 'hint' }, hint) : null]);
}

function programForm(program, ctx) {
  const args = Array.isArray(program.args) ? program.args : [];
  const example = args.flatMap((a) => [a.name, a.default ?? '']).filter((x) => x !== '').join('\n');
  const argsInput = h('textarea', { rows: 4, 'data-testid': 'program-args', placeholder: example || 'no arguments' });
  const parallelism = h('input', { type: 'number', min: 1, step: 1, 'data-testid': 'program-parallelism',
    placeholder: 'default' });
  const savepoint = h('input', { type: 'text', 'data-testid': 'program-savepoint', placeholder: 'none' });
  const allowNonRestored = h('input', { type: 'checkbox', 'data-testid': 'program-allow-non-restored' });
  const config = h('textarea', { rows: 3, 'data-testid': 'program-config', placeholder: 'key=value, one per line' });
  const submit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'program-submit' }, 'Submit');
  const status = h('span', { class: 'muted', 'data-testid': 'program-status' });
  // Errors of this form show next to it, not only in the page's banner.
  const formError = h('div', { class: 'form-error failure', 'data-testid': 'program-error', hidden: true });
  const fail = (err) => {
    formError.textContent = err && Array.isArray(err.messages) ? err.messages.join('; ') : String(err.message || err);
    formError.hidden = false;
  };

  const form = h('form', { class: 'program-form', 'data-testid': 'program-form', 'data-program': program.name }, [
    field('Program arguments', argsInput, 'one per line, --name then its value: e.g. "--events" and "1000" on the next line; empty: the program\'s defaults'),
    h('div', { class: 'row' }, [
      field('Parallelism', parallelism),
      field('Restore from savepoint', savepoint),
      h('label', { class: 'field checkbox' }, [allowNonRestored, ' allow non-restored state']),
    ]),
    field('Configuration overrides', config),
    h('div', { class: 'row' }, [submit, status]),
    formError,
  ]);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    formError.hidden = true;
    const body = { programArgsList: lines(argsInput.value) };
    try {
      if (parallelism.value.trim() !== '') {
        const p = Number(parallelism.value);
        if (!Number.isInteger(p) || p < 1) throw new Error('Parallelism must be a positive integer');
        body.parallelism = p;
      }
      if (savepoint.value.trim() !== '') {
        body.savepointPath = savepoint.value.trim();
        body.allowNonRestoredState = allowNonRestored.checked;
      }
      const overrides = parseConfig(config.value);
      if (Object.keys(overrides).length) body.flinkConfiguration = overrides;
    } catch (err) {
      fail(err);
      return;
    }
    body.jobId = newJobId();
    submit.disabled = true;
    status.textContent = 'Submitting…';
    try {
      const answer = await sendJson('POST', `programs/${seg(program.name)}/run`, body);
      status.textContent = `Submitted job ${answer.jobid}`;
      if (Array.isArray(answer.warnings) && answer.warnings.length) {
        // The job runs; say what of its configuration riffle ignores, next to the form.
        replace(status, ['Submitted ', h('a', { href: `#/jobs/${seg(answer.jobid)}`, 'data-testid': 'program-job-link' },
          `job ${answer.jobid}`), ' with warnings:']);
        formError.textContent = answer.warnings.join('\n');
        formError.hidden = false;
        return;
      }
      if (ctx.alive()) ctx.navigate(`#/jobs/${seg(answer.jobid)}`);
    } catch (err) {
      status.textContent = 'Submission failed';
      fail(err);
    } finally {
      submit.disabled = false;
    }
  });

  return section(program.name, [
    h('p', { class: 'description' }, program.description || ''),
    table(['Argument', 'Default', 'Help'], args.map((a) => [
      h('span', { class: 'mono' }, String(a.name ?? '')),
      h('span', { class: 'mono' }, a.default === null || a.default === undefined ? '-' : String(a.default)),
      String(a.help ?? ''),
    ]), { empty: 'No arguments' }),
    form,
  ], { 'data-testid': 'program', 'data-program': program.name });
}

export function mount(root, _params, ctx) {
  const body = h('div', {}, 'Loading programs…');
  replace(root, [h('h1', {}, 'Submit a job'), body]);
  if (ctx.config.features && ctx.config.features['web-submit'] === false) {
    replace(body, h('p', { class: 'muted' }, 'Submitting from the web UI is turned off on this cluster.'));
    return {};
  }
  let loaded = false;
  return {
    // loaded once: refreshing would wipe what the user is typing
    async refresh() {
      if (loaded) return;
      loaded = true;
      const answer = await getJson('programs');
      if (!ctx.alive()) return;
      const programs = Array.isArray(answer.programs) ? answer.programs : [];
      replace(body, programs.length
        ? programs.map((p) => programForm(p, ctx))
        : h('p', { class: 'muted' }, 'No built-in programs are available.'));
    },
  };
}
