// Running a write action from a button or form: disable the control while the request runs,
// show the server's own error message next to it on failure, and on success announce the result
// and re-render the page so that the new state shows.

import { showFormMessage } from './dom.js';

/** Words for a refused request, in front of the server's message. */
export function describeError(err) {
  const status = err && typeof err.status === 'number' ? err.status : 0;
  const prefix = {
    0: 'The daemon could not be reached',
    400: 'Rejected',
    401: 'The daemon did not accept the token',
    403: 'Your token’s role does not allow this',
    404: 'Not found',
    409: 'Conflict',
    413: 'Too large',
    503: 'The daemon is not ready',
  }[status];
  if (status === 0) return err.message;
  return prefix ? `${prefix} (${status}): ${err.message}` : `Failed (${status}): ${err.message}`;
}

/**
 * Run `fn` (which performs the request) for the control `button`, reporting into `messageEl`.
 * On success `success(result)` gives the text announced in the page's flash area.
 */
export async function runAction(ctx, { button, messageEl, form, fn, success }) {
  const controls = form ? [...form.querySelectorAll('button, input, select, textarea')] : [button];
  controls.forEach((c) => {
    c.disabled = true;
  });
  if (messageEl) showFormMessage(messageEl, 'Working…', 'ok');
  try {
    const result = await fn();
    if (messageEl) showFormMessage(messageEl, '', 'ok');
    if (form) {
      form.removeAttribute('data-dirty');
      form.reset();
    }
    ctx.flash(success(result), 'ok');
    await ctx.refresh();
    return result;
  } catch (err) {
    if (messageEl) showFormMessage(messageEl, describeError(err), 'error');
    else ctx.flash(describeError(err), 'error');
    return undefined;
  } finally {
    controls.forEach((c) => {
      c.disabled = false;
    });
  }
}
