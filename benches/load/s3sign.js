// SigV4 query presigning in njs: the "nginx + njs glue" that edgesign is measured against.
// Written for this harness; it signs GET for host $s3_host, path /$s3_bucket/<key>, where <key>
// is the request path after $sign_prefix (already URI-encoded: the harness uses plain keys).
const crypto = require('crypto');

function sha256Hex(text) {
    return crypto.createHash('sha256').update(text).digest('hex');
}

function hmac(key, text) {
    return crypto.createHmac('sha256', key).update(text).digest();
}

// RFC 3986 unreserved characters stay; everything else is %XX (what SigV4 wants).
function encode(text) {
    return encodeURIComponent(text).replace(/[!'()*]/g, function (c) {
        return '%' + c.charCodeAt(0).toString(16).toUpperCase();
    });
}

function signedUri(r) {
    var v = r.variables;
    var key = v.request_uri.split('?')[0].slice(v.sign_prefix.length);
    var path = '/' + v.s3_bucket + '/' + key;
    var iso = new Date().toISOString();
    var stamp = iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + 'T' +
        iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19) + 'Z';
    var day = stamp.slice(0, 8);
    var scope = day + '/' + v.s3_region + '/s3/aws4_request';
    // Already in canonical (sorted) order.
    var query = 'X-Amz-Algorithm=AWS4-HMAC-SHA256' +
        '&X-Amz-Credential=' + encode(v.s3_access_key + '/' + scope) +
        '&X-Amz-Date=' + stamp +
        '&X-Amz-Expires=' + v.s3_ttl +
        '&X-Amz-SignedHeaders=host';
    var canonical = ['GET', path, query, 'host:' + v.s3_host, '', 'host', 'UNSIGNED-PAYLOAD'].join('\n');
    var toSign = ['AWS4-HMAC-SHA256', stamp, scope, sha256Hex(canonical)].join('\n');
    var k = hmac(hmac(hmac(hmac('AWS4' + v.s3_secret, day), v.s3_region), 's3'), 'aws4_request');
    return path + '?' + query + '&X-Amz-Signature=' + crypto.createHmac('sha256', k).update(toSign).digest('hex');
}

export default { signedUri };
