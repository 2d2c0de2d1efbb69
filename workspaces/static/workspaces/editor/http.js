// JSON requests of the editor pages, with the session's CSRF token; errors come back as values.

export async function sendJson(url, method, body, csrfToken) {
  let response;
  try {
    response = await fetch(url, {
      method,
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRFToken': csrfToken || '' },
      body: body === undefined ? undefined : JSON.stringify(body)
    });
  } catch (err) {
    return { ok: false, status: 0, data: null, message: 'The server could not be reached: ' + (err && err.message ? err.message : err) };
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) { /* not JSON */ }
  const error = data && data.error && typeof data.error === 'object' ? data.error : null;
  return {
    ok: response.ok,
    status: response.status,
    data,
    code: error ? String(error.code || '') : '',
    message: error ? String(error.message || '') : (response.ok ? '' : 'The server answered ' + response.status),
    details: error && error.details ? error.details : null
  };
}
