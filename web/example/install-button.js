// <fota-install-button manifest="firmware/manifest.json" app="https://fota.example.com/">
//
// A button for a vendor's own page that opens the FOTA web app with the vendor's
// firmware manifest (docs/MANIFEST.md): the app fetches the images for the connected
// device, checks them against the manifest's sizes and SHA-256, and guides the update.
// Plain JS, no inline script or style: it works under a strict Content-Security-Policy.
//
// Attributes:
//   manifest  the manifest's URL, relative to this page (required)
//   app       the web app's URL; by default the app this script is served from (the
//             folder above this script's)
//   label     the button's text; by default "Install NAME VERSION" once the manifest is
//             read, "Install the firmware" until then
//   target    "_blank" to open the app in a new tab (default: this tab)
const here = import.meta.url;

class FotaInstallButton extends HTMLElement {
  static get observedAttributes() { return ['manifest', 'label']; }

  connectedCallback() {
    if (!this.button) {
      this.button = document.createElement('button');
      this.button.type = 'button';
      this.button.addEventListener('click', () => this.open());
      this.append(this.button);
    }
    this.render();
  }

  attributeChangedCallback() {
    if (this.button) this.render();
  }

  /** The manifest's absolute URL, or null when the attribute is missing or not a URL. */
  manifestUrl() {
    const m = this.getAttribute('manifest');
    if (!m) return null;
    try { return new URL(m, document.baseURI).href; } catch { return null; }
  }

  /** The app's URL with ?manifest= set. */
  appUrl() {
    const app = new URL(this.getAttribute('app') || '../', this.getAttribute('app') ? document.baseURI : here);
    app.searchParams.set('manifest', this.manifestUrl());
    app.hash = '';
    return app.href;
  }

  render() {
    const url = this.manifestUrl();
    this.button.disabled = !url;
    this.button.textContent = this.getAttribute('label') || 'Install the firmware';
    if (!url) {
      this.button.title = 'This button has no manifest attribute: the page that shows it must name one.';
      return;
    }
    this.button.title = `Opens the FOTA web updater with ${url}`;
    if (this.getAttribute('label')) return;
    // The name and version on the button, when the manifest can be read from here.
    const asked = url;
    fetch(url, { cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : null))
      .then((m) => {
        if (m && this.manifestUrl() === asked && typeof m.name === 'string' && typeof m.version === 'string') {
          this.button.textContent = `Install ${m.name} ${m.version}`;
        }
      })
      .catch(() => {});
  }

  open() {
    if (!this.manifestUrl()) return;
    const url = this.appUrl();
    if (this.getAttribute('target') === '_blank') window.open(url, '_blank', 'noopener');
    else window.location.assign(url);
  }
}

if (!customElements.get('fota-install-button')) customElements.define('fota-install-button', FotaInstallButton);
