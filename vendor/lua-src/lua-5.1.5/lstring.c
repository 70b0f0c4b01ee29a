/*
** $Id: lstring.c,v 2.8.1.1 2007/12/27 13:02:25 roberto Exp $
** String table (keeps all strings handled by Lua)
** See Copyright Notice in lua.h
*/


#include <string.h>

#define lstring_c
#define LUA_CORE

#include "lua.h"

#include "lmem.h"
#include "lobject.h"
#include "lstate.h"
#include "lstring.h"



void luaS_resize (lua_State *L, int newsize) {
  GCObject **newhash;
  stringtable *tb;
  int i;
  if (G(L)->gcstate == GCSsweepstring)
    return;  /* cannot resize during GC traverse */
  newhash = luaM_newvector(L, newsize, GCObject *);
  tb = &G(L)->strt;
  for (i=0; i<newsize; i++) newhash[i] = NULL;
  /* rehash */
  for (i=0; i<tb->size; i++) {
    GCObject *p = tb->hash[i];
    while (p) {  /* for each node in the list */
      GCObject *next = p->gch.next;  /* save next */
      unsigned int h = gco2ts(p)->hash;
      int h1 = lmod(h, newsize);  /* new position */
      lua_assert(cast_int(h%newsize) == lmod(h, newsize));
      p->gch.next = newhash[h1];  /* chain it */
      newhash[h1] = p;
      p = next;
    }
  }
  luaM_freearray(L, tb->hash, tb->size, TString *);
  tb->size = newsize;
  tb->hash = newhash;
}


static TString *newlstr (lua_State *L, const char *str, size_t l,
                                       unsigned int h) {
  TString *ts;
  stringtable *tb;
  if (l+1 > (MAX_SIZET - sizeof(TString))/sizeof(char))
    luaM_toobig(L);
  ts = cast(TString *, luaM_malloc(L, (l+1)*sizeof(char)+sizeof(TString)));
  ts->tsv.len = l;
  ts->tsv.hash = h;
  ts->tsv.marked = luaC_white(G(L));
  ts->tsv.tt = LUA_TSTRING;
  ts->tsv.reserved = 0;
  memcpy(ts+1, str, l*sizeof(char));
  ((char *)(ts+1))[l] = '\0';  /* ending 0 */
  tb = &G(L)->strt;
  h = lmod(h, tb->size);
  ts->tsv.next = tb->hash[h];  /* chain new entry */
  tb->hash[h] = obj2gco(ts);
  tb->nuse++;
  if (tb->nuse > cast(lu_int32, tb->size) && tb->size <= MAX_INT/2)
    luaS_resize(L, tb->size*2);  /* too crowded */
  return ts;
}


/* valkey-rs: the string hash reads every byte. Stock 5.1 sampled at most ~32
** characters of a long string, so long strings that differ only between the
** samples (a common prefix, a counter in the middle) all fell into one chain of
** the string table, and interning them became quadratic. Upstream Valkey hashes
** with MurmurHash3 (x86, 32-bit) seeded with the length; we compute the same
** function (written here from the published algorithm), which also keeps the
** iteration order of string-keyed tables (pairs, next) identical to upstream.
** Blocks are read as little-endian bytes, as upstream does on x86.
*/
static unsigned int rotl32 (unsigned int x, int r) {
  return (x << r) | (x >> (32 - r));
}

static unsigned int hash_bytes (const char *str, size_t l) {
  const unsigned char *p = cast(const unsigned char *, str);
  const unsigned int c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
  unsigned int h = cast(unsigned int, l);  /* seed: the length */
  unsigned int k;
  size_t nblocks = l / 4, b;
  for (b = 0; b < nblocks; b++, p += 4) {
    k = cast(unsigned int, p[0]) | (cast(unsigned int, p[1]) << 8) |
        (cast(unsigned int, p[2]) << 16) | (cast(unsigned int, p[3]) << 24);
    k *= c1; k = rotl32(k, 15); k *= c2;
    h ^= k;
    h = rotl32(h, 13) * 5 + 0xe6546b64u;
  }
  k = 0;
  switch (l & 3) {  /* the 1 to 3 trailing bytes */
    case 3: k ^= cast(unsigned int, p[2]) << 16;  /* FALLTHROUGH */
    case 2: k ^= cast(unsigned int, p[1]) << 8;  /* FALLTHROUGH */
    case 1: k ^= cast(unsigned int, p[0]);
            k *= c1; k = rotl32(k, 15); k *= c2;
            h ^= k;
  }
  h ^= cast(unsigned int, l);  /* finalization: avalanche */
  h ^= h >> 16; h *= 0x85ebca6bu;
  h ^= h >> 13; h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}


TString *luaS_newlstr (lua_State *L, const char *str, size_t l) {
  GCObject *o;
  unsigned int h = hash_bytes(str, l);  /* valkey-rs: every byte, see above */
  for (o = G(L)->strt.hash[lmod(h, G(L)->strt.size)];
       o != NULL;
       o = o->gch.next) {
    TString *ts = rawgco2ts(o);
    if (ts->tsv.len == l && (memcmp(str, getstr(ts), l) == 0)) {
      /* string may be dead */
      if (isdead(G(L), o)) changewhite(o);
      return ts;
    }
  }
  return newlstr(L, str, l, h);  /* not found */
}


Udata *luaS_newudata (lua_State *L, size_t s, Table *e) {
  Udata *u;
  if (s > MAX_SIZET - sizeof(Udata))
    luaM_toobig(L);
  u = cast(Udata *, luaM_malloc(L, s + sizeof(Udata)));
  u->uv.marked = luaC_white(G(L));  /* is not finalized */
  u->uv.tt = LUA_TUSERDATA;
  u->uv.len = s;
  u->uv.metatable = NULL;
  u->uv.env = e;
  /* chain it on udata list (after main thread) */
  u->uv.next = G(L)->mainthread->next;
  G(L)->mainthread->next = obj2gco(u);
  return u;
}

