import type { StandardSchemaV1 } from '@standard-schema/spec'
import { type SchemaIssue, SchemaValidationError } from '../store/errors.js'

export type { StandardSchemaV1 }

function issuePath(issue: StandardSchemaV1.Issue): (string | number | symbol)[] {
  return (issue.path ?? []).map((part) => (typeof part === 'object' ? part.key : part))
}

/**
 * Runs any Standard Schema validator (zod, valibot, arktype, ...) and returns its output
 * value, which may differ from the input (defaults filled in, strings coerced).
 */
export async function validateWithSchema<T>(
  schema: StandardSchemaV1<unknown, T>,
  value: unknown,
): Promise<T> {
  const result = await schema['~standard'].validate(value)
  if (result.issues !== undefined) {
    const issues: SchemaIssue[] = result.issues.map((issue) => ({
      message: issue.message,
      path: issuePath(issue),
    }))
    throw new SchemaValidationError(issues)
  }
  return result.value
}
