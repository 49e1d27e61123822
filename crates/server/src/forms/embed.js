// LeadGen capture form: the optional script of the embed snippet. It fetches a fresh fill-time
// stamp, checks the fields in the page, posts with fetch and shows the thank-you in place of the
// form. Without it the form still posts as plain HTML. Everything it shows is set as text.
(function () {
  'use strict';

  function errorsBox(form) {
    var box = form.querySelector('.leadgen-errors');
    if (!box) {
      box = document.createElement('ul');
      box.className = 'leadgen-errors';
      box.setAttribute('role', 'alert');
      form.insertBefore(box, form.firstChild);
    }
    return box;
  }

  function showErrors(form, items) {
    var box = errorsBox(form);
    box.textContent = '';
    items.forEach(function (e) {
      var li = document.createElement('li');
      li.textContent = e.field ? e.field + ': ' + e.reason : e.reason;
      box.appendChild(li);
      var input = e.field && form.querySelector('[name="' + e.field.replace(/"/g, '') + '"]');
      if (input) input.setAttribute('aria-invalid', 'true');
    });
  }

  function thank(form, message) {
    var p = document.createElement('p');
    p.className = 'leadgen-thanks';
    p.setAttribute('role', 'status');
    p.textContent = message;
    form.replaceWith(p);
  }

  function enhance(form) {
    var action = form.getAttribute('action');
    // The script reports the fields' problems itself, next to the form, in the page's words.
    form.noValidate = true;
    // The snippet's <style> hides the honeypot; a page whose CSP refuses inline styles drops
    // it, so the script moves the field out of sight too (a CSP does not govern CSSOM changes).
    Array.prototype.forEach.call(form.querySelectorAll('.hp'), function (el) {
      el.style.position = 'absolute';
      el.style.left = '-10000px';
      el.style.width = '1px';
      el.style.height = '1px';
      el.style.overflow = 'hidden';
    });
    var stamp = form.querySelector('input[name="lg_stamp"]');
    fetch(action + '/stamp', { mode: 'cors', credentials: 'omit' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) { if (j && stamp) stamp.value = j.stamp; })
      .catch(function () { /* the plain post still works */ });

    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      Array.prototype.forEach.call(form.querySelectorAll('[aria-invalid]'), function (el) {
        el.removeAttribute('aria-invalid');
      });
      if (!form.checkValidity()) {
        var missing = [];
        Array.prototype.forEach.call(form.elements, function (el) {
          if (el.name && el.willValidate && !el.checkValidity()) {
            missing.push({ field: el.name, reason: el.validationMessage });
          }
        });
        showErrors(form, missing);
        return;
      }
      var button = form.querySelector('button[type="submit"]');
      if (button) button.disabled = true;
      // Form-encoded, so the browser needs no preflight; JSON comes back because we ask for it.
      fetch(action, {
        method: 'POST',
        mode: 'cors',
        credentials: 'omit',
        headers: { 'Accept': 'application/json' },
        body: new URLSearchParams(new FormData(form))
      })
        .then(function (r) {
          return r.json().then(function (j) { return { status: r.status, body: j }; });
        })
        .then(function (res) {
          if (button) button.disabled = false;
          if (res.status === 200 && res.body.ok) {
            if (res.body.redirect) {
              window.location.assign(res.body.redirect);
            } else {
              thank(form, res.body.message);
            }
          } else if (res.body.fields) {
            showErrors(form, res.body.fields);
          } else {
            showErrors(form, [{ reason: (res.body.error && res.body.error.message) || 'The form could not be sent.' }]);
          }
        })
        .catch(function () {
          if (button) button.disabled = false;
          showErrors(form, [{ reason: 'The form could not be sent; check your connection and try again.' }]);
        });
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll('form[data-leadgen-form]'), enhance);
})();
