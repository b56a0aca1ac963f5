import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  // .readme-types-*: test/readme-types.test.ts's temp dir, if a run was killed before removing it.
  { ignores: ['dist/', 'node_modules/', 'bench/results/', 'coverage/', '.readme-types-*/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        setInterval: 'readonly',
        setImmediate: 'readonly',
        clearTimeout: 'readonly',
        clearInterval: 'readonly',
        performance: 'readonly',
        URL: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
      'no-console': 'off',
    },
  },
)
