import { useEffect, useState } from "react";

/** A string kept in localStorage under `key` ("" or null removes it). */
export function useStoredState(key: string, initial = "") {
  const [value, setValue] = useState<string>(() => localStorage.getItem(key) ?? initial);
  useEffect(() => {
    if (value) localStorage.setItem(key, value);
    else localStorage.removeItem(key);
  }, [key, value]);
  return [value, setValue] as const;
}
