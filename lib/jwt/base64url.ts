/** Unpadded base64url of JSON, as JWS segments are. */
export const encodeSegment = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
