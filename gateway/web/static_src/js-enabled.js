// GOV.UK Frontend's body classes, as its page template sets them (a file, so the console's
// Content-Security-Policy can forbid inline scripts).
document.body.className += ' js-enabled' + ('noModule' in HTMLScriptElement.prototype ? ' govuk-frontend-supported' : '');
