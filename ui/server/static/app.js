// kfllm web UI. Talks only to the UI server that served it (POST
// /api/generate, POST /api/feedback). Model output and error text are put on
// the page with text nodes (textContent), never parsed as HTML.
'use strict';

(function () {
  const SAMPLE = {
    context: 'The Rhine is a river in Europe. It begins in the Swiss Alps, in the canton of ' +
      'Graubünden, and flows north into Lake Constance. From there it runs west along the ' +
      'border between Switzerland and Germany to Basel, where it turns north and for a ' +
      'stretch forms the border between France and Germany. After about 1,230 kilometres ' +
      'it reaches the North Sea in the Netherlands, near Rotterdam.',
    question: 'Where does the Rhine begin?'
  };

  const $ = (id) => document.getElementById(id);
  const form = $('ask');
  const contextEl = $('context');
  const questionEl = $('question');
  const maxTokensEl = $('max-new-tokens');
  const temperatureEl = $('temperature');
  const generateBtn = $('generate');
  const stopBtn = $('stop');
  const statusEl = $('status');
  const errorEl = $('error');
  const answerEl = $('answer');
  const placeholderEl = $('placeholder');
  const statsEl = $('stats');
  const feedbackEl = $('feedback');
  const feedbackStatus = $('feedback-status');
  const thumbs = [$('thumbs-up'), $('thumbs-down')];

  let controller = null; // AbortController of the answer in flight
  let runId = '';

  $('sample').addEventListener('click', () => {
    contextEl.value = SAMPLE.context;
    questionEl.value = SAMPLE.question;
    questionEl.focus();
  });

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!controller) generate();
  });
  contextEl.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && controller) controller.abort();
  });
  stopBtn.addEventListener('click', () => { if (controller) controller.abort(); });
  thumbs.forEach((b) => b.addEventListener('click', () => sendFeedback(b)));

  function numberOrUndefined(el) {
    const v = el.value.trim();
    if (v === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }

  function setBusy(busy) {
    generateBtn.setAttribute('aria-disabled', busy ? 'true' : 'false');
    generateBtn.textContent = busy ? 'Generating…' : 'Generate Response';
    stopBtn.hidden = !busy;
    answerEl.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  function showError(message) {
    errorEl.textContent = message;
    errorEl.hidden = false;
  }

  function formatMs(ms) {
    if (typeof ms !== 'number') return '—';
    return ms < 1000 ? ms + ' ms' : (ms / 1000).toFixed(2) + ' s';
  }

  function formatCount(n) {
    return typeof n === 'number' ? String(n) : '—';
  }

  // errorFromResponse reads the UI server's {"error": "..."}; anything else
  // becomes a sentence with the status code.
  async function errorFromResponse(resp) {
    try {
      const body = await resp.json();
      if (body && typeof body.error === 'string' && body.error) return body.error;
    } catch (_) { /* not JSON */ }
    return 'The UI server answered with an error (HTTP ' + resp.status + '). Try again.';
  }

  // parseEvent returns the JSON of one server-sent event's data lines.
  function parseEvent(raw) {
    const data = [];
    for (const line of raw.split(/\r?\n/)) {
      if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (data.length === 0) return null; // a comment (keep-alive)
    try {
      return JSON.parse(data.join('\n'));
    } catch (_) {
      return { error: 'The UI server sent an event this page cannot read. Try again.' };
    }
  }

  async function generate() {
    const question = questionEl.value.trim();
    placeholderEl.hidden = true;
    errorEl.hidden = true;
    errorEl.textContent = '';
    statsEl.hidden = true;
    feedbackEl.hidden = true;
    const text = document.createTextNode('');
    answerEl.replaceChildren(text);
    answerEl.hidden = !question;
    if (!question) {
      showError('Please type a question.');
      questionEl.focus();
      return;
    }
    controller = new AbortController();
    const signal = controller.signal;
    setBusy(true);
    statusEl.textContent = 'Waiting for the model…';
    const body = {
      context: contextEl.value,
      question: question,
      max_new_tokens: numberOrUndefined(maxTokensEl),
      temperature: numberOrUndefined(temperatureEl)
    };
    try {
      const resp = await fetch('/api/generate', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Accept': 'text/event-stream' },
        body: JSON.stringify(body),
        signal: signal
      });
      if (!resp.ok) {
        showError(await errorFromResponse(resp));
        statusEl.textContent = '';
        return;
      }
      statusEl.textContent = 'Answering…';
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        buf += decoder.decode(chunk.value, { stream: true }).replace(/\r\n/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = parseEvent(buf.slice(0, i));
          buf = buf.slice(i + 2);
          if (!ev) continue;
          if (typeof ev.error === 'string' && ev.error) {
            showError(ev.error);
            statusEl.textContent = '';
            return;
          }
          if (typeof ev.token === 'string') text.appendData(ev.token);
          if (ev.done) {
            finish(ev, text);
            return;
          }
        }
      }
      showError('The answer was cut off: the connection closed before the model finished. Try again.');
      statusEl.textContent = '';
    } catch (err) {
      if (signal.aborted) {
        statusEl.textContent = 'Stopped.';
      } else {
        showError('Lost the connection to the UI server. Check your network and try again.');
        statusEl.textContent = '';
      }
    } finally {
      controller = null;
      setBusy(false);
    }
  }

  function finish(ev, text) {
    if (typeof ev.prediction === 'string' && ev.prediction !== text.data) text.data = ev.prediction;
    if (text.data === '') {
      statusEl.textContent = 'The model returned an empty answer.';
    } else if (ev.finish_reason === 'length') {
      statusEl.textContent = 'Done: the answer stopped at the max new tokens limit.';
    } else {
      statusEl.textContent = 'Done.';
    }
    $('latency').textContent = formatMs(typeof ev.latency_ms === 'number' ? ev.latency_ms : ev.total_ms);
    $('tokens-in').textContent = formatCount(ev.tokens_in);
    $('tokens-out').textContent = formatCount(ev.tokens_out);
    statsEl.hidden = false;
    runId = typeof ev.run_id === 'string' ? ev.run_id : '';
    feedbackStatus.textContent = '';
    feedbackStatus.className = 'status';
    thumbs.forEach((b) => b.setAttribute('aria-pressed', 'false'));
    feedbackEl.hidden = runId === '';
  }

  // sendFeedback records a thumbs up (score 1) or down (score 0) for the
  // answer's run. The buttons stay focusable; a person may change their mind.
  let sending = false;
  async function sendFeedback(button) {
    if (!runId || sending || button.getAttribute('aria-pressed') === 'true') return;
    sending = true;
    const score = Number(button.dataset.score);
    const previous = thumbs.find((b) => b.getAttribute('aria-pressed') === 'true') || null;
    thumbs.forEach((b) => b.setAttribute('aria-pressed', b === button ? 'true' : 'false'));
    feedbackStatus.className = 'status';
    feedbackStatus.textContent = 'Sending…';
    try {
      const resp = await fetch('/api/feedback', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ run_id: runId, score: score, comment: '' })
      });
      if (!resp.ok) throw new Error(await errorFromResponse(resp));
      feedbackStatus.className = 'status ok';
      feedbackStatus.textContent = 'Thanks, your feedback was recorded.';
    } catch (err) {
      feedbackStatus.className = 'status bad';
      feedbackStatus.textContent = err instanceof TypeError
        ? 'Your feedback was not sent: lost the connection to the UI server.'
        : err.message;
      thumbs.forEach((b) => b.setAttribute('aria-pressed', b === previous ? 'true' : 'false'));
    } finally {
      sending = false;
    }
  }
}());
