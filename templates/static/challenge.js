// herald's sign-up challenge: find a decimal n such that
// SHA-256(challenge + ":" + n) starts with `difficulty` zero bits. The
// form's own hidden fields carry the challenge; this fills in the
// solution, working in short slices so the page stays responsive, and
// sends the form once it is solved. No cookies, no third party. Without
// script the form works all the same: the sign-up is stored and its
// confirmation waits behind the solved ones. Blog embeds that post JSON
// can load this file and call heraldSolve(challenge, difficulty), a
// Promise of the solution.
(function () {
  "use strict";
  var K = new Int32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ]);
  var H = new Int32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
  ]);

  // solver returns step(count): tries count more values of n and returns
  // the solution as a string, or null. The challenge is ASCII (base64url).
  function solver(challenge, bits) {
    var prefix = challenge + ":";
    var buf = new Uint8Array(128), view = new DataView(buf.buffer);
    var W = new Int32Array(64), S = new Int32Array(8);
    var n = 0, i, j;
    for (i = 0; i < prefix.length; i++) buf[i] = prefix.charCodeAt(i) & 0xff;
    var mask = bits >= 32 ? -1 : ~(-1 >>> bits); // the top `bits` bits of the first word

    function compress(off) {
      for (j = 0; j < 16; j++) W[j] = view.getInt32(off + 4 * j);
      for (j = 16; j < 64; j++) {
        var w15 = W[j - 15], w2 = W[j - 2];
        var s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
        var s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
        W[j] = (W[j - 16] + s0 + W[j - 7] + s1) | 0;
      }
      var a = S[0], b = S[1], c = S[2], d = S[3], e = S[4], f = S[5], g = S[6], h = S[7];
      for (j = 0; j < 64; j++) {
        var t1 = (h + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
          ((e & f) ^ (~e & g)) + K[j] + W[j]) | 0;
        var t2 = ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) +
          ((a & b) ^ (a & c) ^ (b & c))) | 0;
        h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      S[0] = (S[0] + a) | 0; S[1] = (S[1] + b) | 0; S[2] = (S[2] + c) | 0; S[3] = (S[3] + d) | 0;
      S[4] = (S[4] + e) | 0; S[5] = (S[5] + f) | 0; S[6] = (S[6] + g) | 0; S[7] = (S[7] + h) | 0;
    }

    return function (count) {
      for (var tries = 0; tries < count; tries++, n++) {
        var digits = String(n), len = prefix.length + digits.length;
        var blocks = len + 9 > 64 ? 2 : 1, end = 64 * blocks;
        for (i = 0; i < digits.length; i++) buf[prefix.length + i] = digits.charCodeAt(i);
        buf[len] = 0x80;
        for (i = len + 1; i < end - 4; i++) buf[i] = 0;
        view.setUint32(end - 4, len * 8);
        S.set(H);
        compress(0);
        if (blocks === 2) compress(64);
        if ((S[0] & mask) === 0) return digits;
      }
      return null;
    };
  }

  // solve runs step in slices of about 20 ms, yielding between them
  // (a MessageChannel: unlike setTimeout it is not clamped to 4 ms).
  function solve(challenge, bits) {
    return new Promise(function (resolve) {
      var step = solver(challenge, bits), slice = 2000;
      var ch = new MessageChannel();
      ch.port1.onmessage = function () {
        var t0 = Date.now(), found = step(slice), took = Date.now() - t0;
        if (found !== null) {
          ch.port1.close();
          resolve(found);
          return;
        }
        if (took < 10) slice *= 2; else if (took > 40) slice = Math.max(500, slice >> 1);
        ch.port2.postMessage(0);
      };
      ch.port2.postMessage(0);
    });
  }
  window.heraldSolve = function (challenge, difficulty) { return solve(String(challenge), difficulty | 0); };

  var inputs = document.querySelectorAll('input[name="challenge"][data-difficulty]');
  Array.prototype.forEach.call(inputs, function (input) {
    var form = input.form, out = form && form.querySelector('input[name="solution"]');
    if (!out) return;
    var solved = false, waiting = false;
    solve(input.value, parseInt(input.getAttribute("data-difficulty"), 10)).then(function (n) {
      out.value = n;
      solved = true;
      if (waiting) form.submit();
    });
    form.addEventListener("submit", function (ev) {
      if (solved) return;
      ev.preventDefault();
      waiting = true;
      var button = form.querySelector('button[type="submit"]');
      if (button) { button.disabled = true; button.textContent = "One moment…"; }
    });
  });
})();
