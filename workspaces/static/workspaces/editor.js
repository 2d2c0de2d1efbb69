/*
 * The panel editor page: NXML in CodeMirror 6 (vendored, see vendor/codemirror/README.txt) with
 * completion from the NXML schema, diagnostics from the validate endpoint as you type, a live
 * preview drawn by the panel page's renderer, and saving (create, or replace in place).
 *
 * Its configuration is the JSON of <script id="nexus-editor-data">, the completion schema that of
 * <script id="nexus-editor-schema">. A native ES module; nothing is built at serve time.
 */
import {
  EditorView, basicSetup, keymap, linter, lintGutter, forceLinting, setDiagnostics
} from './vendor/codemirror/codemirror.bundle.js';
import { el } from './panel/dom.js';
import { showProblems, toDiagnostics } from './editor/diagnostics.js';
import { nxml } from './editor/language.js';
import { sendJson } from './editor/http.js';
import { Preview } from './editor/preview.js';

const LINT_DELAY_MS = 500;

function readJson(id) {
  const script = document.getElementById(id);
  try {
    return script ? JSON.parse(script.textContent || 'null') : null;
  } catch (err) {
    return null;
  }
}

class Editor {
  constructor(config, schema) {
    this.config = config;
    this.alerts = document.getElementById('nx-editor-alerts');
    this.status = document.getElementById('nx-editor-status');
    this.problems = document.getElementById('nx-editor-problems');
    this.saveButton = document.getElementById('nx-editor-save');
    this.idInput = document.getElementById('nx-editor-id');
    this.messageInput = document.getElementById('nx-editor-message');
    this.currentToggle = document.getElementById('nx-editor-current');
    this.preview = new Preview(document.getElementById('nx-editor-preview'));
    this.previewSeq = 0;
    this.saving = false;
    const host = document.getElementById('nx-editor-code');
    const fallback = document.getElementById('nx-editor-fallback');
    const initial = fallback ? fallback.value : String(config.source || '');
    host.textContent = '';
    this.view = new EditorView({
      doc: initial,
      parent: host,
      extensions: [
        basicSetup,
        nxml(schema),
        lintGutter(),
        linter((view) => this.check(view), { delay: LINT_DELAY_MS }),
        keymap.of([{ key: 'Mod-s', preventDefault: true, run: () => { this.save(); return true; } }]),
        EditorView.contentAttributes.of({ 'aria-label': 'NXML source' })
      ]
    });
    this.savedSource = initial;
    // Leaving with unsaved changes asks first (the browser's own prompt).
    globalThis.addEventListener('beforeunload', (event) => {
      if (this.source === this.savedSource) return;
      event.preventDefault();
      event.returnValue = '';
    });
    host.setAttribute('data-ready', 'true');
    globalThis.NexusEditor = this;
    this.saveButton.addEventListener('click', () => this.save());
    if (this.currentToggle) this.currentToggle.addEventListener('change', () => forceLinting(this.view));
  }

  get source() {
    return this.view.state.doc.toString();
  }

  setSource(text) {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: text } });
  }

  // The linter's source: ask the server, mark its errors, refresh the preview when valid.
  async check(view) {
    const doc = view.state.doc;
    const source = doc.toString();
    if (!source.trim()) {
      showProblems(this.problems, this.status, [], 'The source is empty.');
      return [];
    }
    const answer = await sendJson(this.config.validateUrl, 'POST', { source }, this.config.csrfToken);
    if (view.state.doc.toString() !== source) return [];  // typed on meanwhile; the next run decides
    if (!answer.ok || !answer.data) {
      showProblems(this.problems, this.status, [], 'Could not check the NXML: ' + answer.message);
      return [];
    }
    const errors = Array.isArray(answer.data.errors) ? answer.data.errors : [];
    showProblems(this.problems, this.status, errors);
    if (errors.length) this.preview.stale('The preview shows the last valid version.');
    else this.refreshPreview(source);
    return toDiagnostics(doc, errors);
  }

  async refreshPreview(source) {
    const seq = ++this.previewSeq;
    const body = { source };
    if (this.config.panelId && (!this.currentToggle || this.currentToggle.checked)) body.panelId = this.config.panelId;
    const answer = await sendJson(this.config.previewUrl, 'POST', body, this.config.csrfToken);
    if (seq !== this.previewSeq || !answer.ok || !answer.data || !answer.data.valid) return;
    this.preview.show(answer.data.title, answer.data.view, answer.data.state);
  }

  alert(kind, text, action) {
    this.alerts.textContent = '';
    if (!text) return;
    const box = el('div', 'nx-alert nx-alert--' + kind);
    box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    box.appendChild(el('span', 'nx-alert-text', text));
    if (action) {
      const button = el('button', 'nx-button nx-button--secondary nx-button--small', action.label);
      button.type = 'button';
      button.addEventListener('click', action.run);
      box.appendChild(button);
    }
    this.alerts.appendChild(box);
  }

  pageUrl(panelId) {
    return this.config.pageUrlTemplate.replace('__id__', encodeURIComponent(panelId));
  }

  async save() {
    if (this.saving) return;
    this.saving = true;
    this.saveButton.disabled = true;
    this.alert('info', 'Saving…');
    try {
      const answer = this.config.mode === 'edit' ? await this.sendUpdate() : await this.sendCreate();
      this.afterSave(answer);
    } finally {
      this.saving = false;
      this.saveButton.disabled = false;
    }
  }

  sendCreate() {
    const body = { source: this.source };
    const id = this.idInput ? this.idInput.value.trim() : '';
    if (id) body.id = id;
    return sendJson(this.config.panelsUrl, 'POST', body, this.config.csrfToken);
  }

  sendUpdate() {
    const body = { source: this.source };
    const message = this.messageInput ? this.messageInput.value.trim() : '';
    if (message) body.message = message;
    if (Number.isInteger(this.config.revision)) body.baseRevision = this.config.revision;
    return sendJson(this.config.saveUrl, 'PATCH', body, this.config.csrfToken);
  }

  // The user chose to drop their text for the current revision: no prompt about unsaved changes.
  reloadLatest() {
    this.savedSource = this.source;
    globalThis.location.reload();
  }

  afterSave(answer) {
    if (answer.ok) {
      const panelId = this.config.mode === 'edit' ? this.config.panelId : answer.data && answer.data.panelId;
      this.alert('info', 'Saved. Opening the panel…');
      this.savedSource = this.source;
      globalThis.location.assign(this.pageUrl(panelId));
      return;
    }
    if (answer.status === 409 && answer.code === 'REVISION_CONFLICT') {
      this.alert('error', 'Not saved: someone else saved a newer revision of this panel since you opened it. ' +
        'Your text is still here; copy what you need, then reload to edit the latest revision.',
        { label: 'Reload the latest', run: () => this.reloadLatest() });
      return;
    }
    const errors = answer.details && Array.isArray(answer.details.errors) ? answer.details.errors : null;
    if (answer.code === 'INVALID_NXML' && errors) {
      showProblems(this.problems, this.status, errors);
      this.view.dispatch(setDiagnostics(this.view.state, toDiagnostics(this.view.state.doc, errors)));
      this.alert('error', 'Not saved: the NXML has ' + errors.length + ' problem(s); they are marked in the editor.');
      return;
    }
    this.alert('error', 'Not saved: ' + (answer.code ? answer.code + ': ' : '') + (answer.message || 'the request failed'));
  }
}

const config = readJson('nexus-editor-data');
if (config) new Editor(config, readJson('nexus-editor-schema'));
