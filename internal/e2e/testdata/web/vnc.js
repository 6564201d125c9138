// Connects noVNC's RFB to wsbridge on this page's own host, as vnc.html
// does: ws:// or wss:// after the page's scheme, at ?path= (default
// "websockify"), when ?autoconnect=1.
import RFB from './core/rfb.js';

const q = new URLSearchParams(location.search);
const status = document.getElementById('status');
const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
const url = `${scheme}://${location.host}/${q.get('path') || 'websockify'}`;

if (q.get('autoconnect') === '1' || q.get('autoconnect') === 'true') {
  status.textContent = 'Connecting';
  const rfb = new RFB(document.getElementById('screen'), url, { shared: true });
  rfb.addEventListener('connect', () => { status.textContent = 'Connected'; });
  rfb.addEventListener('desktopname', (e) => { status.textContent = `Connected to ${e.detail.name}`; });
  rfb.addEventListener('disconnect', (e) => {
    status.textContent = e.detail.clean ? 'Disconnected' : 'Disconnected (error)';
  });
  rfb.addEventListener('securityfailure', (e) => { status.textContent = `Security failure: ${e.detail.reason}`; });
}
