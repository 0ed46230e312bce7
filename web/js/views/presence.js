// Who is connected to the session, and who holds transport.

import { h, replaceChildren } from "../dom.js";

const KIND = { "daw-plugin": "DAW", browser: "Web", agent: "Agent", cli: "CLI" };

export class PresenceView {
  constructor({ store, conn }) {
    this.store = store;
    this.conn = conn;
    this.list = h("ul", { class: "peers", "aria-label": "Connected clients" });
    this.element = h("div", { class: "presence" }, this.list);
  }

  holderName() {
    const p = this.store.presence;
    if (!p?.transport_holder) return null;
    return p.peers.find((x) => x.client_id === p.transport_holder)?.name ?? "another client";
  }

  update() {
    const p = this.store.presence;
    if (!p || !this.store.sessionId) {
      replaceChildren(this.list);
      return;
    }
    replaceChildren(
      this.list,
      p.peers.map((peer) => {
        const me = peer.client_id === this.conn.clientId;
        const holds = peer.client_id === p.transport_holder;
        return h(
          "li",
          { class: `peer${holds ? " holder" : ""}${me ? " me" : ""}`, title: `${peer.name} (${peer.kind})${holds ? ", holds transport" : ""}`, dataset: { kind: peer.kind } },
          h("span", { class: "peer-kind" }, KIND[peer.kind] || peer.kind),
          h("span", { class: "peer-name" }, me ? `${peer.name} (you)` : peer.name),
          holds ? h("span", { class: "badge" }, "transport") : null,
        );
      }),
    );
  }
}
