// Public surface of src/system: one operation per file. Each area appends its exports below.
