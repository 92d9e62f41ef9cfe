// The console works without JavaScript; this only starts GOV.UK Frontend's components
// (skip link focus, error summary focus, service navigation toggle).
import { initAll } from './govuk-frontend.min.js'

initAll()
