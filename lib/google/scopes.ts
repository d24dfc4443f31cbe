/** The OAuth scopes a token asks for when it names no audience. */

export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

/** The `scope` claim: the given scopes space-separated, or cloud-platform when none are given. */
export function scopeClaim(scopes: readonly string[] | undefined): string {
  return (scopes ?? [CLOUD_PLATFORM_SCOPE]).join(' ');
}
