// Entry point: start the app and expose it for tests and tools as `window.tutti`.

import { App } from "./app.js";

const app = new App(document);
window.tutti = {
  app,
  store: app.store,
  conn: app.conn,
  transport: app.transport,
  renderNotesOffline: (notes, opts) => app.renderNotesOffline(notes, opts),
  renderTakeOffline: (artifactId, opts) => app.renderTakeOffline(artifactId, opts),
};
